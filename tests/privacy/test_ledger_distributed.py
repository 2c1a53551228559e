"""Ledger entries of distributed-noise rounds: recorded terms, ε recomputed independently."""

import json

import pytest

from ssl_fed.privacy import skellam as sk
from ssl_fed.privacy.distributed.params import choose_scale
from ssl_fed.privacy.ledger import BudgetExceededError, PrivacyLedger


def _ddp() -> tuple[dict[str, float], object]:
    p = choose_scale(
        dim=5000,
        bits=20,
        clip=1.0,
        sensitivity_factor=2,
        noise_multiplier=1.2,
        min_noisy_sites=5,
        max_units=300,
        num_sites=10,
    )
    terms = {
        "l2_sensitivity": p.l2_sensitivity,
        "l1_sensitivity": p.l1_sensitivity,
        "bits": float(p.bits),
        "gamma": p.gamma,
        "min_noisy_sites": float(p.min_noisy_sites),
    }
    return terms, p


def test_ledger_epsilon_equals_an_independent_recomputation_after_reopening(tmp_path):
    # Prepare: 3 distributed rounds and 1 local training on one ledger
    terms, p = _ddp()
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    for rnd in (1, 2, 3):
        ledger.charge(
            run_id="r",
            round=rnd,
            noise_multiplier=1.2,
            sample_rate=0.05,
            steps=1,
            sensitivity=2.0,
            ddp=terms,
        )
    ledger.charge(
        run_id="l", round=1, noise_multiplier=1.0, sample_rate=0.1, steps=20, sensitivity=1.0
    )

    # Execute: reopen from disk
    reopened = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)

    # Assert: ε from the recorded terms, composed by hand with the Skellam + Gaussian RDPs
    step = sk.SkellamStep(1.2, 0.05, 1, p.l2_sensitivity, p.l1_sensitivity)  # type: ignore[attr-defined]
    expected = sk.epsilon_for_history([step, step, step, (1.0, 0.1, 20)], 1e-5)
    assert reopened.epsilon() == pytest.approx(expected, rel=1e-12)
    entry = reopened.entries[0]
    assert entry.mechanism == "skellam" and entry.ddp == terms
    lines = (tmp_path / "s" / "privacy_ledger.jsonl").read_text().splitlines()
    assert "ddp" not in json.loads(lines[-1])  # a local entry is written as before


def test_a_distributed_round_past_the_budget_is_refused_before_it_is_recorded(tmp_path):
    terms, _ = _ddp()
    ledger = PrivacyLedger(tmp_path / "s", budget=0.5, delta=1e-5)
    with pytest.raises(BudgetExceededError):
        ledger.charge(
            run_id="r",
            round=1,
            noise_multiplier=0.3,
            sample_rate=0.5,
            steps=1,
            sensitivity=2.0,
            ddp=terms,
        )
    assert len(ledger.entries) == 0
