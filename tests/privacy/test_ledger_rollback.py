"""Every way to roll a site's ledger back is refused (issue 10, item 3), built by hand."""

import hashlib
import json
import shutil

import pytest

from ssl_fed.privacy.ledger import LedgerError, PrivacyLedger


def three_trainings(state):
    """A ledger with a header and three charges (4 lines); return its path."""
    ledger = PrivacyLedger(state, budget=50, delta=1e-5)
    for rnd, steps in enumerate((50, 60, 70), start=1):
        ledger.charge(
            run_id="r", round=rnd, noise_multiplier=1.0, sample_rate=0.1, steps=steps, sensitivity=1
        )
    return ledger.path


def reopen(state):
    return PrivacyLedger(state, budget=50, delta=1e-5)


def test_an_edited_line_with_a_recomputed_plain_sha256_is_refused(tmp_path):
    # Prepare: lower line 2's steps and re-hash it the way the old checksum allowed
    path = three_trainings(tmp_path / "s")
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    del record["mac"]
    record["steps"] = 1
    record["mac"] = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
    lines[1] = json.dumps(record, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")

    # Execute / Assert
    with pytest.raises(LedgerError, match="line 2: MAC mismatch"):
        reopen(tmp_path / "s")


def test_a_deleted_middle_line_is_refused(tmp_path):
    path = three_trainings(tmp_path / "s")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")
    with pytest.raises(LedgerError, match="line 2: chain broken"):
        reopen(tmp_path / "s")


def test_a_deleted_last_line_is_refused(tmp_path):
    path = three_trainings(tmp_path / "s")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(
        LedgerError, match="cut short: the anchor records 4 lines, the ledger has 3"
    ):
        reopen(tmp_path / "s")


def test_an_older_copy_put_back_is_refused(tmp_path):
    # Prepare: keep a copy after one training, train twice more, put the copy back
    ledger = PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5)
    ledger.charge(
        run_id="r", round=1, noise_multiplier=1.0, sample_rate=0.1, steps=50, sensitivity=1
    )
    old = ledger.path.read_bytes()
    for rnd in (2, 3):
        ledger.charge(
            run_id="r", round=rnd, noise_multiplier=1.0, sample_rate=0.1, steps=50, sensitivity=1
        )
    ledger.path.write_bytes(old)

    # Execute / Assert
    with pytest.raises(LedgerError, match="cut short"):
        reopen(tmp_path / "s")


def test_a_deleted_ledger_file_is_refused_not_restarted_at_zero(tmp_path):
    path = three_trainings(tmp_path / "s")
    path.unlink()
    with pytest.raises(LedgerError, match=r"ledger is missing.*records 4 lines"):
        reopen(tmp_path / "s")
    assert not path.exists()


def test_a_deleted_state_dir_is_refused(tmp_path):
    three_trainings(tmp_path / "s")
    shutil.rmtree(tmp_path / "s")
    with pytest.raises(LedgerError, match="whole state directory was deleted"):
        reopen(tmp_path / "s")


def test_a_deleted_anchor_is_refused(tmp_path):
    three_trainings(tmp_path / "s")
    for anchor in (tmp_path / "s.keys").glob("ledger-anchor-*"):
        anchor.unlink()
    with pytest.raises(LedgerError, match="no anchor for this ledger"):
        reopen(tmp_path / "s")


def test_an_edited_anchor_is_refused(tmp_path):
    # Prepare: set the anchor back to 2 lines, as if two trainings had never happened
    three_trainings(tmp_path / "s")
    (anchor,) = (tmp_path / "s.keys").glob("ledger-anchor-*")
    record = json.loads(anchor.read_text())
    record["records"] = 2
    anchor.write_text(json.dumps(record))

    # Execute / Assert
    with pytest.raises(LedgerError, match="fails its MAC"):
        reopen(tmp_path / "s")


def test_a_missing_key_is_refused_and_not_regenerated(tmp_path):
    three_trainings(tmp_path / "s")
    (tmp_path / "s.keys" / "ledger.key").unlink()
    with pytest.raises(LedgerError, match=r"ledger key .* is missing"):
        reopen(tmp_path / "s")
    assert not (tmp_path / "s.keys" / "ledger.key").exists()


def test_a_ledger_read_with_another_key_is_refused(tmp_path):
    # Prepare: the right ledger, the wrong key directory (another site's)
    three_trainings(tmp_path / "s")
    PrivacyLedger(tmp_path / "other", budget=8, delta=1e-5)

    # Execute / Assert
    with pytest.raises(LedgerError, match="line 1: MAC mismatch"):
        PrivacyLedger(tmp_path / "s", budget=50, delta=1e-5, key_dir=tmp_path / "other.keys")


def test_deleting_state_and_key_dirs_together_is_not_detectable_locally(tmp_path):
    # The documented limit: nothing local remains (the server's round count is the check left)
    three_trainings(tmp_path / "s")
    shutil.rmtree(tmp_path / "s")
    shutil.rmtree(tmp_path / "s.keys")
    assert len(reopen(tmp_path / "s")) == 0
