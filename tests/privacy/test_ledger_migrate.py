"""An old-format ledger migrates once, keeping every entry, into the keyed and chained format."""

import hashlib
import json

import pytest

from ssl_fed.cli import main
from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger import LedgerError, PrivacyLedger
from ssl_fed.privacy.ledger_migrate import migrate_legacy

OLD = [
    {"run_id": "a", "round": 1, "noise_multiplier": 2.0, "sample_rate": 0.1, "steps": 20},
    {"run_id": "a", "round": 2, "noise_multiplier": 1.5, "sample_rate": 0.1, "steps": 20},
]


def write_format_1(state, tamper=False):
    """Lines as the format-1 ledger wrote them: sorted JSON plus a plain SHA-256 of it."""
    state.mkdir()
    lines = []
    for i, fields in enumerate(OLD):
        record = {**fields, "sensitivity": 1.0, "accountant": "rdp", "delta": 1e-5, "time": 1.0 + i}
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
        if tamper and i == 1:
            record["steps"] = 1
        lines.append(json.dumps({**record, "sha256": digest}, sort_keys=True))
    (state / "privacy_ledger.jsonl").write_text("\n".join(lines) + "\n")


def test_migrate_keeps_every_entry_records_the_budget_and_keeps_the_old_file(tmp_path, capsys):
    # Prepare
    write_format_1(tmp_path / "s")
    steps = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in OLD]

    # Execute
    code = main(["ledger", "migrate", f"state_dir={tmp_path}/s", "privacy.epsilon_budget=6"])

    # Assert: a format-2 ledger with both entries and budget 6; verify passes; v1 kept
    assert code == 0
    ledger = PrivacyLedger(tmp_path / "s", budget=6.0, delta=1e-5)
    assert [(e.run_id, e.round) for e in ledger.entries] == [("a", 1), ("a", 2)]
    assert ledger.epsilon() == pytest.approx(epsilon_for_history(steps, 1e-5), rel=1e-12)
    assert ledger.budget == 6.0
    assert (tmp_path / "s" / "privacy_ledger.v1.jsonl").exists()
    assert main(["ledger", "verify", f"state_dir={tmp_path}/s"]) == 0


def test_migrate_refuses_an_old_ledger_that_fails_its_checksum(tmp_path, capsys):
    write_format_1(tmp_path / "s", tamper=True)
    assert main(["ledger", "migrate", f"state_dir={tmp_path}/s"]) == 2
    assert "line 2: checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "s" / "privacy_ledger.v1.jsonl").exists()


def test_migrate_refuses_a_ledger_already_in_the_new_format(tmp_path):
    PrivacyLedger(tmp_path / "s", budget=8, delta=1e-5)
    with pytest.raises(LedgerError, match="nothing to migrate"):
        migrate_legacy(tmp_path / "s", budget=8, delta=1e-5)
