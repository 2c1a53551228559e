"""The site ledger: durable, checksummed, composed over its whole history, budget-enforcing."""

import json

import pytest

from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger import BudgetExceededError, LedgerError, PrivacyLedger


def charge(ledger, run_id="r1", round=1, sigma=1.0, q=0.1, steps=50):
    return ledger.charge(
        run_id=run_id,
        round=round,
        noise_multiplier=sigma,
        sample_rate=q,
        steps=steps,
        sensitivity=2.0,
    )


def test_epsilon_is_composed_over_every_entry_and_survives_a_restart(tmp_path):
    # Prepare: two runs charge the same site
    ledger = PrivacyLedger(tmp_path, budget=50, delta=1e-5)
    charge(ledger, "run-a", 1)
    charge(ledger, "run-b", 1, sigma=0.9)

    # Execute: a new process opens the same directory
    reopened = PrivacyLedger(tmp_path, budget=50, delta=1e-5)

    # Assert
    assert [e.run_id for e in reopened.entries] == ["run-a", "run-b"]
    expected = epsilon_for_history([(1.0, 0.1, 50), (0.9, 0.1, 50)], 1e-5)
    assert reopened.epsilon() == pytest.approx(expected)
    assert reopened.remaining() == pytest.approx(50 - expected)


def test_a_training_over_budget_is_refused_and_not_recorded(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path, budget=1.0, delta=1e-5)

    # Execute / Assert
    with pytest.raises(BudgetExceededError, match="budget"):
        charge(ledger, sigma=0.5, q=0.5, steps=100)
    assert ledger.entries == [] and not ledger.path.exists()


def test_an_edited_entry_is_detected_and_refuses(tmp_path):
    # Prepare: someone lowers the recorded step count by hand
    ledger = PrivacyLedger(tmp_path, budget=50, delta=1e-5)
    charge(ledger)
    record = json.loads(ledger.path.read_text())
    record["steps"] = 1
    ledger.path.write_text(json.dumps(record) + "\n")

    # Execute / Assert
    with pytest.raises(LedgerError, match="line 1: checksum mismatch"):
        PrivacyLedger(tmp_path, budget=50, delta=1e-5)


def test_a_torn_last_line_refuses_and_is_not_reset(tmp_path):
    # Prepare: a crash left half a line
    ledger = PrivacyLedger(tmp_path, budget=50, delta=1e-5)
    charge(ledger)
    with open(ledger.path, "a") as fh:
        fh.write('{"run_id": "r2", "ro')
    size = ledger.path.stat().st_size

    # Execute / Assert
    with pytest.raises(LedgerError, match="line 2"):
        PrivacyLedger(tmp_path, budget=50, delta=1e-5)
    assert ledger.path.stat().st_size == size


def test_entries_for_a_run_are_found(tmp_path):
    ledger = PrivacyLedger(tmp_path, budget=50, delta=1e-5)
    charge(ledger, "a", 1)
    charge(ledger, "b", 1)
    charge(ledger, "a", 2)
    assert [e.round for e in ledger.entries_for("a")] == [1, 2]
