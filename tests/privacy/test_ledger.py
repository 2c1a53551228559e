"""The site ledger: durable, keyed, composed over its whole history, budget-enforcing."""

import json
import stat

import dp_accounting
import pytest
from opacus.accountants import RDPAccountant

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


def test_epsilon_equals_independent_accountants_rebuilt_from_the_charges(tmp_path):
    # Prepare: three trainings over two runs, as charged
    charges = [("run-a", 1, 1.0, 0.1, 50), ("run-a", 2, 1.0, 0.1, 50), ("run-b", 1, 0.9, 0.2, 30)]
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    for run_id, rnd, sigma, q, steps in charges:
        charge(ledger, run_id, rnd, sigma, q, steps)
    opacus, google = RDPAccountant(), dp_accounting.rdp.RdpAccountant()
    for _, _, sigma, q, steps in charges:
        for _ in range(steps):
            opacus.step(noise_multiplier=sigma, sample_rate=q)
        google.compose(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
        )

    # Execute: a new process opens the same directory
    reopened = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)

    # Assert: same history; ε equals Opacus stepped one step at a time, and Google's RDP closely
    assert [(e.run_id, e.round) for e in reopened.entries] == [c[:2] for c in charges]
    assert len(reopened) == 3
    assert reopened.epsilon() == pytest.approx(opacus.get_epsilon(1e-5), rel=1e-9)
    assert reopened.epsilon() == pytest.approx(google.get_epsilon(1e-5), rel=0.03)
    assert reopened.remaining() == pytest.approx(50 - opacus.get_epsilon(1e-5), rel=1e-9)


def test_the_secret_and_anchor_live_outside_the_state_dir_and_private(tmp_path):
    # Execute
    ledger = PrivacyLedger(tmp_path / "state", budget=8, delta=1e-5)
    charge(ledger)

    # Assert: the state dir holds only the ledger; the key dir is 0700 with 0600 files
    keys = tmp_path / "state.keys"
    assert ledger.key_dir == keys.resolve()
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["privacy_ledger.jsonl"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    files = sorted(p.name for p in keys.iterdir())
    assert files[1] == "ledger.key" and files[0].startswith("ledger-anchor-")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.iterdir())
    assert len(bytes.fromhex((keys / "ledger.key").read_text())) == 32


def test_a_training_over_budget_is_refused_and_not_recorded(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path / "s", budget=1.0, delta=1e-5)

    # Execute / Assert: refused; the file holds the header only
    with pytest.raises(BudgetExceededError, match="budget"):
        charge(ledger, sigma=0.5, q=0.5, steps=100)
    assert ledger.entries == []
    assert len(ledger.path.read_text().splitlines()) == 1


def test_a_torn_last_line_refuses_and_is_not_reset(tmp_path):
    # Prepare: a crash left half a line
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    charge(ledger)
    with open(ledger.path, "a") as fh:
        fh.write('{"kind": "charge", "ro')
    size = ledger.path.stat().st_size

    # Execute / Assert
    with pytest.raises(LedgerError, match="line 3: unparseable"):
        PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    assert ledger.path.stat().st_size == size


def test_a_crash_between_append_and_anchor_update_is_accepted_and_caught_up(tmp_path):
    # Prepare: the anchor as it was before the last charge (the process died after the fsync)
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    charge(ledger, "a", 1)
    (anchor,) = ledger.key_dir.glob("ledger-anchor-*")
    before = anchor.read_bytes()
    charge(ledger, "a", 2)
    anchor.write_bytes(before)

    # Execute
    reopened = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)

    # Assert: both trainings count, and the anchor caught up (3 lines: header + 2 charges)
    assert len(reopened) == 2
    assert json.loads(anchor.read_text())["records"] == 3


def test_read_only_open_uses_the_recorded_terms_and_writes_nothing(tmp_path):
    # Prepare
    ledger = PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-6)
    charge(ledger)
    before = ledger.path.read_bytes()

    # Execute
    seen = PrivacyLedger(tmp_path / "s")

    # Assert
    assert (seen.budget, seen.delta, len(seen)) == (8.0, 1e-6, 1)
    with pytest.raises(LedgerError, match="read-only"):
        charge(seen)
    assert ledger.path.read_bytes() == before


def test_an_old_format_ledger_is_refused_with_how_to_migrate(tmp_path):
    # Prepare: a format-1 line (plain SHA-256, no header)
    (tmp_path / "s").mkdir()
    old = {"run_id": "r", "round": 1, "noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 5}
    (tmp_path / "s" / "privacy_ledger.jsonl").write_text(json.dumps({**old, "sha256": "ab"}) + "\n")

    # Execute / Assert
    with pytest.raises(LedgerError, match=r"old unkeyed format.*ledger migrate"):
        PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5)


def test_a_key_dir_inside_the_state_dir_is_refused(tmp_path):
    with pytest.raises(LedgerError, match="inside the state directory"):
        PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5, key_dir=tmp_path / "s" / "keys")


def test_entries_for_a_run_are_found(tmp_path):
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    charge(ledger, "a", 1)
    charge(ledger, "b", 1)
    charge(ledger, "a", 2)
    assert [e.round for e in ledger.entries_for("a")] == [1, 2]
