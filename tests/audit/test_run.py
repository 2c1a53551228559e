"""Audited trainings: canaries are units, the correct mechanism passes, broken ones are caught."""

import pytest
import torch

import ssl_fed.audit.run as audit_run
import ssl_fed.privacy.dpsgd as dpsgd
from ssl_fed.audit.run import audit_black_box, audit_white_box
from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.engine import DPSGDEngine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.tasks.units import UnitPlan
from ssl_fed.train.local import train_local
from tests.helpers import images, tiny_task

pytestmark = pytest.mark.slow


def config(task="rotation", epsilon=1.0, batch=16, epochs=1):
    cfg = RootConfig()
    cfg.task.name = task
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.progress = batch, epochs, False
    cfg.privacy.target_epsilon, cfg.privacy.grad_method = epsilon, "hooks"
    return cfg


@pytest.fixture
def seeded(monkeypatch):
    """Fix the audit's coins/sampling and the DP noise (secret in production) for the test."""
    monkeypatch.setattr(audit_run, "_secret_generator", lambda: torch.Generator().manual_seed(3))
    monkeypatch.setattr(dpsgd, "noise_generator", lambda: torch.Generator().manual_seed(4))


def white_box(tmp_path, cfg, task="rotation", m=200, n=60):
    ledger = PrivacyLedger(tmp_path, budget=100.0, delta=1e-5)
    data = ImageDataset(images(n), None, "test")
    model = tiny_task(task).float()
    return audit_white_box(model, data, cfg, ledger=ledger, run_id="a", canaries=m, beta=0.05)


def test_canaries_are_charged_exactly_as_real_units(tmp_path, seeded):
    # Prepare: the same site trained plainly with 40 + 100 real images
    cfg = config()
    plain = PrivacyLedger(tmp_path / "plain", budget=1.0, delta=1e-5)
    bigger = ImageDataset(images(140), None, "test")
    train_local(tiny_task("rotation").float(), bigger, cfg, ledger=plain, run_id="a")

    # Execute
    result = white_box(tmp_path / "audit", cfg, m=100, n=40)

    # Assert: same σ, q = 16/140, steps and ε; one entry each
    audited = PrivacyLedger(tmp_path / "audit", budget=1.0, delta=1e-5).entries
    assert len(audited) == len(plain.entries) == 1
    assert audited[0].step == plain.entries[0].step
    assert result.sample_rate == pytest.approx(16 / 140) and result.steps == 9
    assert result.epsilon == pytest.approx(plain.epsilon())


def test_the_correct_mechanism_passes_the_audit(tmp_path, seeded):
    # Execute
    result = white_box(tmp_path, config(epsilon=1.0))

    # Assert
    assert result.outcome.epsilon_lower <= result.epsilon <= 1.0
    assert not result.violation


def test_the_default_ghost_step_is_audited_like_the_others(tmp_path, seeded):
    # Prepare: the shipped default grad_method (ghost), which once skipped Opacus' step hook,
    # so the audit saw no released sum and crashed
    cfg = config(epsilon=1.0)
    cfg.privacy.grad_method = "ghost"

    # Execute
    result = white_box(tmp_path, cfg)

    # Assert: every step observed, and the correct mechanism passes
    assert result.steps > 0 and result.outcome.canaries == 200
    assert result.outcome.epsilon_lower <= result.epsilon <= 1.0
    assert not result.violation


def test_noise_switched_off_is_flagged(tmp_path, seeded, monkeypatch):
    # Prepare: the bug: the step adds no noise while the ledger records the calibrated σ
    make_private = DPSGDEngine.make_private

    def no_noise(self, *args, **kwargs):
        step = make_private(self, *args, **kwargs)
        step.optimizer.noise_multiplier = 0.0
        return step

    monkeypatch.setattr(DPSGDEngine, "make_private", no_noise)

    # Execute
    result = white_box(tmp_path, config(epsilon=1.0))

    # Assert: the audit proves far more than the claimed ε = 1
    assert result.violation
    assert result.outcome.epsilon_lower > 2 * result.epsilon


def test_group_sensitivity_declared_as_one_is_flagged(tmp_path, seeded, monkeypatch):
    # Prepare: the correct group-contrastive audit, then the bug: sensitivity 1 declared for
    # groups, so the step adds σ·C instead of 2σ·C while the ledger reports the same ε
    cfg = config("contrastive", epsilon=2.0)
    correct = white_box(tmp_path / "ok", cfg, "contrastive", m=50, n=20)
    plan = audit_run.plan_units
    monkeypatch.setattr(
        audit_run,
        "plan_units",
        lambda *a: UnitPlan("group", plan(*a).num_groups, 1.0),
    )

    # Execute
    buggy = white_box(tmp_path / "bug", cfg, "contrastive", m=50, n=20)

    # Assert: same claimed ε; the probe measures more than C for one image and flags it
    assert buggy.epsilon == pytest.approx(correct.epsilon)
    assert not correct.violation and correct.measured_sensitivity <= 2.0
    assert buggy.sensitivity_violation and buggy.violation
    assert 1.0 < buggy.measured_sensitivity <= 2.0


def test_black_box_audit_runs_the_real_training(tmp_path, seeded):
    # Prepare
    cfg = config(epsilon=2.0)
    ledger = PrivacyLedger(tmp_path, budget=2.0, delta=1e-5)
    data = ImageDataset(images(60), None, "test")

    # Execute
    result = audit_black_box(
        tiny_task("rotation").float(),
        data,
        cfg,
        ledger=ledger,
        run_id="b",
        canaries=100,
        beta=0.05,
    )

    # Assert: the ledger's ε, the canaries' count, and no violation
    assert result.epsilon == pytest.approx(ledger.epsilon()) and result.epsilon <= 2.0
    assert result.outcome.canaries == 100
    assert result.outcome.epsilon_lower <= result.epsilon
