"""The privacy engine: σ and ε against independent accountants, one charge, one interface."""

from __future__ import annotations

from pathlib import Path

import dp_accounting
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from ssl_fed.config import RootConfig
from ssl_fed.privacy.dpsgd import DPSGDStep, PlainStep
from ssl_fed.privacy.engine import (
    DPSGDEngine,
    NoPrivacyEngine,
    PrivacyEngine,
    build_engine,
    mechanism_name,
)
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.schedule import make_schedule
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.local import make_optimizer
from tests.helpers import tiny_task

DELTA = 1e-5


def dp_config(target: float = 4.0, rounds: int = 3, budget: float | None = None) -> RootConfig:
    cfg = RootConfig()
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.max_rounds = 16, 2, rounds
    cfg.privacy.target_epsilon, cfg.privacy.epsilon_budget = target, budget
    cfg.privacy.delta = DELTA
    return cfg


def engine_for(
    cfg: RootConfig, ledger: PrivacyLedger | None, run_id: str = "r", n: int = 128
) -> PrivacyEngine:
    schedule = make_schedule(n, cfg.train.batch_size, cfg.train.local_epochs, n)
    return build_engine(cfg, ledger, schedule, n=n, run_id=run_id)


def opacus_epsilon(history: list[tuple[float, float, int]]) -> float:
    """ε from Opacus' RDP accountant stepped one step at a time (as its optimizer hook does)."""
    acc = RDPAccountant()
    for sigma, q, steps in history:
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=q)
    return float(acc.get_epsilon(DELTA))


def google_epsilon(history: list[tuple[float, float, int]]) -> float:
    acc = dp_accounting.rdp.RdpAccountant()
    for sigma, q, steps in history:
        acc.compose(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
        )
    return float(acc.get_epsilon(DELTA))


@pytest.mark.slow
def test_sigma_is_calibrated_once_for_every_planned_training(tmp_path: Path) -> None:
    # Prepare: 128 images, B = 16 -> q = 1/8, 8 steps per epoch, 2 epochs, 3 planned trainings
    cfg = dp_config(target=4.0, rounds=3)
    engine = engine_for(cfg, PrivacyLedger(tmp_path, budget=4.0, delta=DELTA))

    # Execute
    sigma = engine.noise_multiplier()
    assert sigma is not None

    # Assert: Opacus' own calibration for 3 x 16 steps; 3 trainings spend at most the target,
    # and nearly all of it (the smallest such σ), by both independent accountants
    expected = get_noise_multiplier(
        target_epsilon=4.0, target_delta=DELTA, sample_rate=1 / 8, steps=48
    )
    assert sigma == pytest.approx(expected, rel=0.02)
    spent = opacus_epsilon([(sigma, 1 / 8, 16)] * 3)
    assert 3.9 <= spent <= 4.0
    assert google_epsilon([(sigma, 1 / 8, 16)] * 3) == pytest.approx(spent, rel=0.03)


@pytest.mark.slow
def test_the_site_budget_caps_the_target_once(tmp_path: Path) -> None:
    # Prepare: the run asks for ε = 8, the site's budget is 2
    cfg = dp_config(target=8.0, rounds=1, budget=2.0)
    engine = engine_for(cfg, PrivacyLedger(tmp_path, budget=2.0, delta=DELTA))

    # Execute
    sigma = engine.noise_multiplier()

    # Assert: calibrated for the budget, not for the run's target
    expected = get_noise_multiplier(
        target_epsilon=2.0, target_delta=DELTA, sample_rate=1 / 8, steps=16
    )
    assert sigma == pytest.approx(expected, rel=0.02)


@pytest.mark.slow
def test_make_private_charges_the_ledger_once_before_returning_the_step(tmp_path: Path) -> None:
    # Prepare
    ledger = PrivacyLedger(tmp_path, budget=4.0, delta=DELTA)
    cfg = dp_config()
    engine = engine_for(cfg, ledger)
    task = tiny_task("rotation").float()
    plan = plan_units(task, cfg.task, cfg.train.batch_size)

    # Execute
    step = engine.make_private(task, make_optimizer(task, cfg), plan, round=1)

    # Assert: one entry with the engine's (σ, q, steps), on disk; ε is the accountant's
    assert isinstance(step, DPSGDStep)
    entries = PrivacyLedger(tmp_path, budget=4.0, delta=DELTA).entries
    assert [(e.run_id, e.round, e.step, e.sensitivity) for e in entries] == [
        ("r", 1, (engine.noise_multiplier(), 1 / 8, 16), 1.0)
    ]
    assert engine.epsilon() == pytest.approx(opacus_epsilon([entries[0].step]), rel=1e-9)
    assert engine.public_scalars() == {
        "epsilon": engine.epsilon(),
        "epsilon-remaining": pytest.approx(4.0 - opacus_epsilon([entries[0].step])),
    }


@pytest.mark.slow
def test_a_later_round_of_the_run_reuses_sigma_and_a_charged_round_is_declined(
    tmp_path: Path,
) -> None:
    # Prepare: round 1 of run r is charged
    ledger = PrivacyLedger(tmp_path, budget=4.0, delta=DELTA)
    cfg = dp_config()
    first = engine_for(cfg, ledger)
    task = tiny_task("rotation").float()
    first.make_private(task, make_optimizer(task, cfg), plan_units(task, cfg.task, 16), round=1)

    # Execute: a new engine for the same run (a new process, say)
    second = engine_for(cfg, ledger)

    # Assert
    assert second.noise_multiplier() == first.noise_multiplier()
    assert not second.decide(1).ok and "already charged" in second.decide(1).reason
    assert second.decide(2).ok


def test_an_exhausted_ledger_declines_with_the_reason(tmp_path: Path) -> None:
    # Prepare: an earlier run spent more than the budget of 1 (then larger)
    PrivacyLedger(tmp_path, budget=100.0, delta=DELTA).charge(
        run_id="old", round=1, noise_multiplier=0.6, sample_rate=1.0, steps=20, sensitivity=1.0
    )
    ledger = PrivacyLedger(tmp_path, budget=1.0, delta=DELTA)

    # Execute
    decision = engine_for(dp_config(target=1.0), ledger).decide(1)

    # Assert
    assert not decision.ok and "ε" in decision.reason


def test_privacy_off_is_the_same_interface_and_never_opens_a_ledger(tmp_path: Path) -> None:
    # Prepare: a ledger opener that records whether it was called
    opened: list[int] = []

    def opener() -> PrivacyLedger:
        opened.append(1)
        return PrivacyLedger(tmp_path, budget=1.0, delta=DELTA)

    cfg = dp_config()
    cfg.privacy.enabled = False
    task = tiny_task("rotation").float()
    schedule = make_schedule(64, 16, 1, None)

    # Execute
    engine = build_engine(cfg, opener, schedule, n=64, run_id="r")
    step = engine.make_private(
        task, make_optimizer(task, cfg), plan_units(task, cfg.task, 16), round=1
    )

    # Assert
    assert isinstance(engine, NoPrivacyEngine) and isinstance(step, PlainStep)
    assert opened == [] and list(tmp_path.iterdir()) == []
    assert engine.decide(1).ok and engine.noise_multiplier() is None and engine.epsilon() is None
    assert engine.public_scalars() == {} and engine.ledger_step() is None
    assert not engine.secret_randomness
    assert engine.describe(plan_units(task, cfg.task, 16))["privacy_unit"] == "none (privacy off)"


def test_epsilon_stays_at_the_site_without_a_public_size(tmp_path: Path) -> None:
    cfg = dp_config()
    schedule = make_schedule(128, 16, 2, None)
    engine = build_engine(
        cfg, PrivacyLedger(tmp_path, budget=4.0, delta=DELTA), schedule, n=128, run_id="r"
    )
    assert engine.public_scalars() == {}


def test_privacy_on_without_a_ledger_is_refused() -> None:
    with pytest.raises(ValueError, match="no ledger"):
        engine_for(dp_config(), None)


def test_the_config_selects_the_mechanism_by_name() -> None:
    cfg = dp_config()
    assert mechanism_name(cfg) == "dpsgd" and DPSGDEngine.name == "dpsgd"
    cfg.privacy.enabled = False
    assert mechanism_name(cfg) == "off" and NoPrivacyEngine.name == "off"
