"""The budget lives in the ledger's header and can only be lowered (issue 10, item 3)."""

import pytest

from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger import (
    BudgetExceededError,
    BudgetRaiseError,
    LedgerError,
    PrivacyLedger,
)

STEP = (2.0, 0.1, 20)


def spend(ledger):
    sigma, q, steps = STEP
    ledger.charge(
        run_id="r",
        round=len(ledger) + 1,
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        sensitivity=1,
    )


def test_opening_with_a_larger_budget_is_refused_and_names_the_recorded_one(tmp_path):
    # Prepare: a site created with budget 3, partly spent
    ledger = PrivacyLedger(tmp_path / "s", budget=3.0, delta=1e-5)
    spend(ledger)
    before = ledger.path.read_bytes()

    # Execute / Assert: the case, a rerun whose target is 8
    with pytest.raises(BudgetRaiseError, match=r"larger than the budget 3\.0"):
        PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-5)
    assert ledger.path.read_bytes() == before


def test_a_lower_budget_is_recorded_and_stays_in_force(tmp_path):
    # Prepare: ε after one training, and a budget between one and two trainings' worth
    one = epsilon_for_history([STEP], 1e-5)
    two = epsilon_for_history([STEP, STEP], 1e-5)
    assert one < two < 50
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    spend(ledger)
    lower = (one + two) / 2

    # Execute: lower it, then come back with the original 50
    lowered = PrivacyLedger(tmp_path / "s", budget=lower, delta=1e-5)

    # Assert: one chained budget line; the lower budget refuses a second training; 50 is refused
    assert lowered.budget == lower
    assert len(lowered.path.read_text().splitlines()) == 3
    with pytest.raises(BudgetExceededError, match=f"budget of {lower}"):
        spend(lowered)
    with pytest.raises(BudgetRaiseError):
        PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    assert PrivacyLedger(tmp_path / "s").budget == lower


def test_the_same_budget_writes_nothing(tmp_path):
    ledger = PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5)
    before = ledger.path.read_bytes()
    PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5)
    assert ledger.path.read_bytes() == before


def test_a_different_delta_is_refused(tmp_path):
    PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5)
    with pytest.raises(LedgerError, match=r"run with privacy\.delta=1e-05"):
        PrivacyLedger(tmp_path / "s", budget=8, delta=1e-6)
