"""A run that would learn nothing is declined: σ above ``privacy.max_noise_multiplier``.

Through the real engine and a real ledger: an earlier run left little budget, so calibration
needs a huge σ; the engine declines with the reason and charges nothing. Ground truth: Opacus'
RDP accountant, stepped one step at a time, shows the ceiling's σ cannot fit the budget left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_fed.privacy.ledger import BudgetExceededError, PrivacyLedger
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.local import make_optimizer
from tests.helpers import tiny_task
from tests.privacy.test_engine import DELTA, dp_config, engine_for, opacus_epsilon

OLD = (1.0, 0.125, 48)
"""An earlier run: σ 1, q = 16/128, 3 trainings of 16 steps (the schedule below)."""


def nearly_spent(tmp_path: Path, budget: float) -> PrivacyLedger:
    ledger = PrivacyLedger(tmp_path, budget=budget, delta=DELTA)
    sigma, q, steps = OLD
    ledger.charge(
        run_id="old", round=1, noise_multiplier=sigma, sample_rate=q, steps=steps, sensitivity=1.0
    )
    return ledger


@pytest.mark.slow
def test_a_run_left_with_too_little_budget_is_declined_and_charges_nothing(
    tmp_path: Path,
) -> None:
    # Prepare: the old run spent ε≈7.10; the budget is 7.11 (n=128, batch 16, 2 epochs, 3 rounds)
    budget = 7.11
    ledger = nearly_spent(tmp_path, budget)
    cfg = dp_config(target=budget)
    assert cfg.privacy.max_noise_multiplier == 10.0  # the public default
    engine = engine_for(cfg, ledger, run_id="new")

    # Execute
    decision = engine.decide(1)
    task = tiny_task("rotation").float()
    plan = plan_units(task, cfg.task, 16)
    with pytest.raises(BudgetExceededError, match="budget too small"):
        engine.make_private(task, make_optimizer(task, cfg), plan, round=1)

    # Assert: declined with the σ it would need; the ceiling σ=10 does not fit (independent)
    sigma = engine.noise_multiplier()
    assert not decision.ok
    assert decision.reason.startswith(f"budget too small: σ would be {sigma:.3g} > ceiling 10")
    assert opacus_epsilon([OLD, (10.0, 0.125, 48)]) > budget
    assert len(ledger) == 1 and ledger.entries_for("new") == []


@pytest.mark.slow
def test_a_normal_budget_and_no_ceiling_are_not_declined(tmp_path: Path) -> None:
    # Prepare: with ε 9 the same history needs σ≈1.1, far below the ceiling
    roomy = engine_for(dp_config(target=9.0), nearly_spent(tmp_path / "a", 9.0), run_id="new")
    off = dp_config(target=7.11)
    off.privacy.max_noise_multiplier = None
    unbounded = engine_for(off, nearly_spent(tmp_path / "b", 7.11), run_id="new")

    # Execute
    roomy_decision, unbounded_decision = roomy.decide(1), unbounded.decide(1)

    # Assert
    assert roomy_decision.ok and roomy.noise_multiplier() < 10.0
    assert unbounded_decision.ok and unbounded.noise_multiplier() > 10.0


def test_an_explicit_noise_multiplier_is_the_operators_choice(tmp_path: Path) -> None:
    cfg = dp_config(target=7.11)
    cfg.privacy.noise_multiplier = 20.0
    engine = engine_for(cfg, nearly_spent(tmp_path, 7.11), run_id="new")
    assert engine.decide(1).ok


@pytest.mark.slow
def test_train_local_prints_the_reason_and_exits_2_without_charging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: the site's ledger (train-local's default <out>/state) is nearly spent
    from ssl_fed.cli import main

    ledger = nearly_spent(tmp_path / "out" / "state", 7.105)
    tiny = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16"]

    # Execute
    code = main(
        [
            "train-local",
            *tiny,
            "encoder.proj_dim=8",
            "privacy.target_epsilon=7.105",
            "train.local_epochs=1",
            f"out={tmp_path / 'out'}",
        ]
    )

    # Assert: one plain line; the ledger holds only the old run
    err = capsys.readouterr().err
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        next(line for line in err.splitlines() if "budget too small: σ would be" in line)
    ]
    assert len(ledger) == 1 == len(PrivacyLedger(tmp_path / "out" / "state"))
    assert not (tmp_path / "out" / "metrics.json").exists()
