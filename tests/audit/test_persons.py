"""Audits with person units: canaries are persons, ε_lower bounds the per-person ε."""

import pytest
import torch

import ssl_fed.audit.run as audit_run
import ssl_fed.privacy.dpsgd as dpsgd
from ssl_fed.audit.canaries import DiracCanaries
from ssl_fed.audit.run import audit_black_box, audit_white_box
from ssl_fed.audit.sensitivity import owners
from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.ledger import PrivacyLedger
from tests.helpers import images, tiny_task


def config(task="rotation", epsilon=1.0, per_person=3, cap=4):
    cfg = RootConfig()
    cfg.task.name = task
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.progress = 16, 1, False
    cfg.privacy.target_epsilon, cfg.privacy.grad_method = epsilon, "hooks"
    cfg.privacy.unit, cfg.privacy.max_images_per_person = "person", cap
    cfg.data.synthetic_persons = per_person
    return cfg


@pytest.fixture
def seeded(monkeypatch):
    """Fix the audit's coins/sampling and the DP noise (secret in production) for the test."""
    monkeypatch.setattr(audit_run, "_secret_generator", lambda: torch.Generator().manual_seed(3))
    monkeypatch.setattr(dpsgd, "noise_generator", lambda: torch.Generator().manual_seed(4))


def white_box(tmp_path, cfg, m=200, n=60):
    ledger = PrivacyLedger(tmp_path, budget=100.0, delta=1e-5, privacy_unit="person")
    data = ImageDataset(images(n), None, "test")
    task = tiny_task(cfg.task.name).float()
    return audit_white_box(task, data, cfg, ledger=ledger, run_id="p", canaries=m, beta=0.05)


def test_mask_rows_group_slots_by_person() -> None:
    # Prepare: person labels >= 2 own several slots; 1 is an image alone; 0 is padding
    persons = torch.tensor([2.0, 3.0, 2.0, 0.0])
    singles = torch.tensor([1.0, 1.0, 0.0])
    # Execute / Assert
    assert [w.tolist() for w in owners(persons)] == [[0, 2], [1]]
    assert [w.tolist() for w in owners(singles)] == [[0], [1]]


def test_a_canary_person_is_one_unit_of_its_summed_rows() -> None:
    # Prepare: two canaries on coordinates 1 and 4 of one 6-vector, signs + and -
    dirac = DiracCanaries(("w", "w"), torch.tensor([1, 4]), torch.tensor([1.0, -1.0]), 2.0)
    shapes = {"w": torch.Size([6])}
    # Execute: canary persons of 3 images each
    rows = dirac.rows(shapes, torch.tensor([1, 0]), 3)["w"]
    # Assert: one row per person, 3 image rows of 2.0 summed at the canary's coordinate
    assert rows.tolist() == [[0, 0, 0, 0, -6.0, 0], [0, 6.0, 0, 0, 0, 0]]


@pytest.mark.slow
def test_person_audit_passes_and_charges_persons(tmp_path, seeded):
    # Prepare: 60 images as 20 synthetic persons of 3; 200 canary persons
    cfg = config(epsilon=1.0)
    # Execute
    result = white_box(tmp_path, cfg)
    # Assert: public size 20 + 200 persons, q = 16/220; per-person ε from the ledger holds
    assert result.sample_rate == pytest.approx(16 / 220)
    assert result.outcome.epsilon_lower <= result.epsilon <= 1.0
    assert result.sensitivity == 1.0 and result.measured_sensitivity <= 1.0 + 1e-4
    assert result.measured_sensitivity > 0.99  # the probe's clip is tiny: a person moves by C
    assert not result.violation


@pytest.mark.slow
def test_clipping_a_persons_images_one_by_one_is_flagged(tmp_path, seeded, monkeypatch):
    # Prepare: the bug: a canary person's 4 image rows enter as 4 units, each clipped to C,
    # so the person moves the sum by 4C while the ledger charges a person sensitivity C
    rows = DiracCanaries.rows

    def per_image(self, shapes, which, images=1):
        return rows(self, shapes, which.repeat_interleave(images), 1)

    monkeypatch.setattr(DiracCanaries, "rows", per_image)
    # Execute
    result = white_box(tmp_path, config(epsilon=1.0))
    # Assert
    assert result.violation and result.outcome.epsilon_lower > result.epsilon


@pytest.mark.slow
def test_group_contrastive_person_probe_stays_within_2c(tmp_path, seeded):
    # Execute: persons in random groups (negatives from other persons), 50 canary persons
    result = white_box(tmp_path, config("contrastive", epsilon=2.0), m=50, n=30)
    # Assert: per-person sensitivity 2C declared; the probe's whole-person removals stay within
    assert result.sensitivity == 2.0
    assert 0.0 < result.measured_sensitivity <= 2.0 + 1e-4
    assert not result.violation


@pytest.mark.slow
def test_black_box_person_audit_runs_the_real_training(tmp_path, seeded):
    # Prepare
    cfg = config(epsilon=2.0)
    ledger = PrivacyLedger(tmp_path, budget=2.0, delta=1e-5, privacy_unit="person")
    data = ImageDataset(images(60), None, "test")
    # Execute
    result = audit_black_box(
        tiny_task("rotation").float(), data, cfg, ledger=ledger, run_id="b", canaries=40, beta=0.05
    )
    # Assert: 40 canary persons scored; ε per person from the ledger; no violation
    assert result.outcome.canaries == 40
    assert result.epsilon == pytest.approx(ledger.epsilon()) and result.epsilon <= 2.0
    assert result.outcome.epsilon_lower <= result.epsilon
    assert result.measured_sensitivity <= 1.0 + 1e-4
