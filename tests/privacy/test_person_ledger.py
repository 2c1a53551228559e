"""Person unit in the ledger, the schedule, ε, the guard and the site policy."""

import pytest

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed.guard import GuardError, allowed_fit_metrics, check_scalars
from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger import LedgerError, PrivacyLedger
from ssl_fed.privacy.policy import check_run, simulation_policy
from ssl_fed.tasks.units import unit_label
from ssl_fed.train.local import train_local
from tests.helpers import images, tiny_task


def config(unit: str, public_size: int | None = 32) -> RootConfig:
    cfg = RootConfig()
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.progress = 8, 1, False
    cfg.data.public_size = public_size
    cfg.privacy.unit, cfg.privacy.noise_multiplier = unit, 1.3
    cfg.privacy.target_epsilon = cfg.privacy.epsilon_budget = 50.0
    return cfg


def test_a_ledger_cannot_switch_unit_mid_history(tmp_path):
    # Prepare: a per-image ledger with one charge
    ledger = PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-5)
    ledger.charge(
        run_id="r", round=1, noise_multiplier=1.0, sample_rate=0.1, steps=10, sensitivity=1.0
    )

    # Execute / Assert: reopening it per person is refused, naming the rule
    with pytest.raises(LedgerError, match="new, separately labelled budget"):
        PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-5, privacy_unit="person")
    with pytest.raises(LedgerError, match="differs"):
        ledger.require_unit("person")

    # the old history is intact and still per image; a new state_dir starts the person budget
    assert len(PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-5)) == 1
    fresh = PrivacyLedger(tmp_path / "p", budget=8.0, delta=1e-5, privacy_unit="person")
    assert fresh.header.privacy_unit == "person" and len(fresh) == 0


def test_a_person_run_is_refused_by_a_per_image_ledger_before_any_training(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path, budget=50.0, delta=1e-5)
    data = ImageDataset(images(40), None, "t", tuple(f"p{i // 2}" for i in range(40)))

    # Execute / Assert: nothing charged
    with pytest.raises(LedgerError, match="privacy unit 'person' differs"):
        train_local(
            tiny_task("rotation").float(), data, config("person"), ledger=ledger, run_id="r"
        )
    assert len(ledger) == 0


def test_persons_with_one_image_charge_exactly_what_images_do(tmp_path):
    # Prepare: 40 images, each its own person; the same public size 32
    data = ImageDataset(images(40), None, "t", tuple(f"p{i}" for i in range(40)))
    ledgers = {}

    # Execute
    for unit in ("image", "person"):
        ledgers[unit] = PrivacyLedger(tmp_path / unit, budget=50.0, delta=1e-5, privacy_unit=unit)
        result = train_local(
            tiny_task("joint").float(), data, config(unit), ledger=ledgers[unit], run_id="r"
        )
        assert result.plan.sensitivity == 2.0

    # Assert: the same (σ, q, steps, sensitivity) and the same ε
    image, person = ledgers["image"].entries[0], ledgers["person"].entries[0]
    assert (image.noise_multiplier, image.sample_rate, image.steps, image.sensitivity) == (
        person.noise_multiplier,
        person.sample_rate,
        person.steps,
        person.sensitivity,
    )
    assert ledgers["image"].epsilon() == ledgers["person"].epsilon()


def test_q_and_steps_come_from_the_public_number_of_persons(tmp_path):
    # Prepare: 60 images of 20 persons; public number of persons 16, 8 persons per batch
    data = ImageDataset(images(60), None, "t", tuple(f"p{i % 20}" for i in range(60)))
    ledger = PrivacyLedger(tmp_path, budget=50.0, delta=1e-5, privacy_unit="person")

    # Execute
    result = train_local(
        tiny_task("rotation").float(), data, config("person", 16), ledger=ledger, run_id="r"
    )

    # Assert: q = 8/16, ceil(16/8) = 2 steps, ε from an independent accountant call
    entry = ledger.entries[0]
    assert (entry.sample_rate, entry.steps, result.steps) == (0.5, 2, 2)
    assert result.plan.kind == "person" and "one person" in result.plan.describes
    assert result.epsilon == pytest.approx(epsilon_for_history([(1.3, 0.5, 2)], 1e-5, "rdp"))


def test_counts_of_persons_and_images_per_person_never_pass_the_guard():
    # Execute / Assert: only ε and the remaining budget may leave with an update
    for key in ("num-persons", "images-per-person", "persons", "num-examples"):
        with pytest.raises(GuardError, match="not whitelisted"):
            check_scalars({"epsilon": 1.0, key: 12}, allowed_fit_metrics(), 8.0)
    assert allowed_fit_metrics() == frozenset({"epsilon", "epsilon-remaining"})


def test_without_a_public_number_of_persons_epsilon_stays_at_the_site(tmp_path):
    data = ImageDataset(images(30), None, "t", tuple(f"p{i % 10}" for i in range(30)))
    ledger = PrivacyLedger(tmp_path, budget=50.0, delta=1e-5, privacy_unit="person")
    result = train_local(
        tiny_task("rotation").float(), data, config("person", None), ledger=ledger, run_id="r"
    )
    assert not result.size_is_public


def test_a_site_policy_refuses_a_run_with_another_unit():
    cfg = config("person")
    assert check_run(cfg, simulation_policy(cfg)) == []
    image_site = simulation_policy(config("image"))
    assert [r.code for r in check_run(cfg, image_site)] == ["unit"]


def test_reports_name_the_unit():
    assert "ε is per person" in unit_label({"enabled": True, "unit": "person"})
    assert unit_label({"enabled": True, "unit": "image"}).startswith("one original image")
    assert unit_label({"enabled": False, "unit": "person"}) == "none (privacy off)"
