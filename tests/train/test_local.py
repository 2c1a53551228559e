"""The local training loop: ledger charged first, σ calibrated, budgets enforced."""

import pytest
import torch

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.ledger import BudgetExceededError, PrivacyLedger
from ssl_fed.train.local import train_local
from tests.helpers import images, tiny_task


def small_config(**privacy):
    cfg = RootConfig()
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.progress = 16, 1, False
    for key, value in privacy.items():
        setattr(cfg.privacy, key, value)
    return cfg


def site(n=64):
    return ImageDataset(images(n), None, "test")


def float_task(name):
    return tiny_task(name).float()


def test_private_training_charges_the_ledger_and_reports_its_epsilon(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path, budget=8.0, delta=1e-5)
    task = float_task("joint")
    before = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}

    # Execute
    result = train_local(task, site(), small_config(), ledger=ledger, run_id="r", round=1)

    # Assert: one entry per training, the calibrated σ keeps ε ≤ target, weights moved
    assert len(ledger.entries) == 1 and ledger.entries[0].steps == result.steps == 4
    assert ledger.entries[0].sensitivity == 2.0
    assert result.epsilon == pytest.approx(ledger.epsilon()) and result.epsilon <= 8.0
    assert result.epsilon > 7.5
    assert any(not torch.equal(before[k], v) for k, v in result.encoder_state.items())
    assert set(result.losses) == {"rotation", "contrastive"}


def test_the_entry_is_on_disk_before_training_runs(tmp_path):
    # Prepare: a task whose training step explodes
    ledger = PrivacyLedger(tmp_path, budget=8.0, delta=1e-5)
    task = float_task("rotation")

    def boom(images, draws=None):
        raise RuntimeError("crash in the middle of training")

    task.make_views = boom

    # Execute
    with pytest.raises(RuntimeError, match="crash"):
        train_local(task, site(), small_config(), ledger=ledger, run_id="r")

    # Assert: the spend is recorded (over-counting is the safe direction)
    assert len(PrivacyLedger(tmp_path, budget=8.0, delta=1e-5).entries) == 1


def test_a_second_round_of_the_same_run_reuses_sigma(tmp_path):
    ledger = PrivacyLedger(tmp_path, budget=8.0, delta=1e-5)
    cfg = small_config()
    cfg.train.max_rounds = 2
    first = train_local(float_task("rotation"), site(), cfg, ledger=ledger, run_id="r", round=1)
    second = train_local(float_task("rotation"), site(), cfg, ledger=ledger, run_id="r", round=2)
    assert first.noise_multiplier == second.noise_multiplier
    assert second.epsilon <= 8.0


def test_a_training_the_budget_cannot_afford_is_refused_before_training(tmp_path):
    # Prepare: σ fixed by hand so that one training costs more than the budget
    ledger = PrivacyLedger(tmp_path, budget=0.5, delta=1e-5)
    task = float_task("rotation")
    before = {k: v.clone() for k, v in task.state_dict().items()}

    # Execute / Assert
    with pytest.raises(BudgetExceededError):
        train_local(
            task,
            site(),
            small_config(noise_multiplier=0.5, epsilon_budget=0.5),
            ledger=ledger,
            run_id="r",
        )
    assert ledger.entries == []
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())


def test_privacy_off_touches_no_ledger_and_reports_no_epsilon(tmp_path):
    # Prepare: an existing ledger with one entry, and a file snapshot of the ledger's directories
    ledger = PrivacyLedger(tmp_path / "state", budget=8.0, delta=1e-5)
    ledger.charge(
        run_id="old", round=1, noise_multiplier=1.0, sample_rate=0.1, steps=3, sensitivity=1.0
    )
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    # Execute: a privacy-off training handed that ledger
    result = train_local(
        float_task("contrastive"), site(), small_config(enabled=False), ledger=ledger, run_id="r"
    )

    # Assert: no entry added, not a byte of the ledger or its key/anchor changed, no ε or σ
    assert len(ledger.entries) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    assert result.epsilon is None and result.noise_multiplier is None


def test_sampling_and_noise_are_not_reproducible_from_the_public_seed(tmp_path):
    # Prepare: two private trainings with identical config, seed and initial weights
    results = []
    for name in ("a", "b"):
        ledger = PrivacyLedger(tmp_path / name, budget=8.0, delta=1e-5)
        results.append(
            train_local(float_task("rotation"), site(), small_config(), ledger=ledger, run_id="r")
        )

    # Assert: an adversary who knows train.seed cannot regenerate the noise
    first, second = (r.encoder_state for r in results)
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_privacy_off_is_reproducible_from_the_seed():
    runs = [
        train_local(
            float_task("rotation"), site(), small_config(enabled=False), ledger=None, run_id="r"
        ).encoder_state
        for _ in range(2)
    ]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
