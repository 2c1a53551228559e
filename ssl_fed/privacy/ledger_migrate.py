"""Migrate a format-1 ledger (plain SHA-256 lines, no header) to the keyed, chained format 2.

Format 1 could not show an edit with a recomputed checksum, a deleted line or a deleted file, and
it held no budget. Migration keeps every entry as it stands (each one's SHA-256 is checked first),
writes a header with the budget the operator states now, MACs and chains the entries, and anchors
the result; the old file stays beside it as ``privacy_ledger.v1.jsonl``.

Notes
-----
Migration can only vouch for the old file as it is found: rollbacks done to a format-1 ledger
before migration cannot be detected now. Every entry is recorded whatever the budget (the spend
happened); a history already past the stated budget refuses all further training.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.ledger_check import LEDGER_FILE
from ssl_fed.privacy.ledger_records import LedgerEntry, LedgerError, is_legacy

OLD_FILE = "privacy_ledger.v1.jsonl"


def read_legacy(path: Path) -> list[LedgerEntry]:
    """Return the entries of a format-1 ledger, each checked against its SHA-256."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            digest = record.pop("sha256")
            body = json.dumps(record, sort_keys=True).encode()
            entry = LedgerEntry(**record)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise LedgerError(f"{path} line {number}: unparseable old entry ({err})") from err
        if hashlib.sha256(body).hexdigest() != digest:
            raise LedgerError(f"{path} line {number}: checksum mismatch; restore it first")
        entries.append(entry)
    return entries


def migrate_legacy(
    state_dir: str | Path,
    *,
    budget: float,
    delta: float,
    accountant: str = "rdp",
    key_dir: str | Path | None = None,
) -> PrivacyLedger:
    """Rewrite the format-1 ledger of ``state_dir`` as format 2; return the migrated ledger."""
    path, old = Path(state_dir) / LEDGER_FILE, Path(state_dir) / OLD_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if not lines or not is_legacy(lines[0]):
        raise LedgerError(f"{path} is not an old-format ledger: nothing to migrate")
    if old.exists():
        raise LedgerError(f"{old} exists: a migration was started before; inspect both files")
    entries = read_legacy(path)
    if any(not math.isclose(e.delta, delta, rel_tol=1e-12) for e in entries):
        raise LedgerError(f"{path} holds entries at another δ than privacy.delta={delta}")
    path.rename(old)
    ledger = PrivacyLedger(
        state_dir, budget=budget, delta=delta, accountant=accountant, key_dir=key_dir
    )
    for entry in entries:
        ledger.record(entry)
    return ledger
