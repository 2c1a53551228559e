"""`ssl-fed ledger verify`: counts, ε and budget when sound; the exact fault when not."""

import json

from ssl_fed.cli import main
from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger import PrivacyLedger


def two_trainings(state):
    ledger = PrivacyLedger(state, budget=8.0, delta=1e-5)
    for rnd in (1, 2):
        ledger.charge(
            run_id="r", round=rnd, noise_multiplier=2.0, sample_rate=0.1, steps=20, sensitivity=1
        )
    return ledger


def test_verify_a_sound_ledger_prints_counts_epsilon_budget_and_ok(tmp_path, capsys):
    # Prepare: two trainings, then the budget lowered to 6
    two_trainings(tmp_path / "s")
    PrivacyLedger(tmp_path / "s", budget=6.0, delta=1e-5)
    expected = epsilon_for_history([(2.0, 0.1, 20)] * 2, 1e-5)

    # Execute
    code = main(["ledger", "verify", f"state_dir={tmp_path}/s"])

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert "records verified: 4 (header, 2 trainings, 1 budget changes)" in out
    assert f"ε spent: {expected:.4f}" in out
    assert "budget 6.0 (recorded at creation: 8.0)" in out
    assert out.rstrip().endswith("ok")


def test_verify_names_the_edited_line_and_exits_2(tmp_path, capsys):
    # Prepare: line 3 (the second training) gets fewer steps
    ledger = two_trainings(tmp_path / "s")
    lines = ledger.path.read_text().splitlines()
    record = json.loads(lines[2])
    record["steps"] = 1
    lines[2] = json.dumps(record, sort_keys=True)
    ledger.path.write_text("\n".join(lines) + "\n")

    # Execute
    code = main(["ledger", "verify", f"state_dir={tmp_path}/s"])

    # Assert: the first two lines verify; the fault is named by line
    out = capsys.readouterr().out
    assert code == 2
    assert "records verified: 2 (header, 1 trainings" in out
    assert "NOT OK: line 3: MAC mismatch" in out


def test_verify_with_an_explicit_key_dir_and_show_keep_working(tmp_path, capsys):
    # Prepare: a ledger keyed from a separate key directory
    keys = tmp_path / "node-keys"
    PrivacyLedger(tmp_path / "s", budget=8.0, delta=1e-5, key_dir=keys).charge(
        run_id="r", round=1, noise_multiplier=2.0, sample_rate=0.1, steps=20, sensitivity=1
    )
    args = [f"state_dir={tmp_path}/s", f"privacy.key_dir={keys}"]

    # Execute / Assert: verify and show with the key dir; without it, verify says what is missing
    assert main(["ledger", "verify", *args]) == 0
    assert main(["ledger", "show", *args]) == 0
    assert "ε spent" in capsys.readouterr().out
    assert main(["ledger", "verify", f"state_dir={tmp_path}/s"]) == 2
    assert "ledger key" in capsys.readouterr().out
