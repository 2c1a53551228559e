"""Check a site's ledger against its key and anchor, and say exactly what is wrong.

One inspection serves both opening a ledger (which raises on any problem) and ``ssl-fed ledger
verify`` (which prints the problem and exits 2): the rules live here once.

Notes
-----
Guarantee: a ledger passes only if every line carries a valid MAC under the site's secret, every
line chains to the one before it, the anchor beside the secret matches the line at its count, and
a ledger whose anchor remains has not vanished. A ledger longer than its anchor passes (a crash
between the fsynced append and the anchor update leaves exactly that, and only the secret's holder
can write MACed lines); one with no training in it passes without an anchor (a crash right after
creation; nothing was spent). Deleting the key directory together with the state directory leaves
nothing local to compare with: see :mod:`ssl_fed.privacy.ledger_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.ledger_key import KEY_FILE, Anchor, LedgerKey, default_key_dir
from ssl_fed.privacy.ledger_records import (
    LEGACY,
    ChainReading,
    LedgerError,
    is_legacy,
    read_chain,
)

LEDGER_FILE = "privacy_ledger.jsonl"


@dataclass
class Inspection:
    """A ledger as found on disk: its verified lines, its key and anchor, and the first problem."""

    path: Path
    key_dir: Path
    key: LedgerKey | None
    reading: ChainReading | None
    anchor: Anchor | None
    problem: str | None


def inspect_ledger(state_dir: str | Path, key_dir: str | Path | None = None) -> Inspection:
    """Read and verify the ledger of ``state_dir`` with the key of ``key_dir`` (default sibling)."""
    path = Path(state_dir) / LEDGER_FILE
    keys = Path(key_dir) if key_dir is not None else default_key_dir(state_dir)
    if keys.resolve().is_relative_to(Path(state_dir).resolve()):
        raise LedgerError(
            f"privacy.key_dir={keys} is inside the state directory {state_dir}: the ledger's key "
            "and anchor must live outside it (default: <state_dir>.keys), or deleting the state "
            "directory would erase them too"
        )
    key = LedgerKey.open(keys, create=False)
    found = Inspection(path, keys, key, None, None, None)
    if not path.exists():
        found.anchor = key.anchor_of(state_dir) if key is not None else None
        if found.anchor is not None:
            found.problem = (
                f"the ledger is missing, but the anchor in {keys} records "
                f"{found.anchor.records} lines for it: the ledger file or the whole state "
                "directory was deleted"
            )
        return found
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        found.problem = f"unreadable ({err})"
        return found
    if lines and is_legacy(lines[0]):
        found.problem = f"line 1: {LEGACY}"
    elif key is None:
        found.problem = (
            f"the ledger key {keys / KEY_FILE} is missing, so the ledger cannot be verified: "
            "restore the key directory, or name it with privacy.key_dir=DIR"
        )
    else:
        found.reading = read_chain(lines, key.mac)
        found.problem = found.reading.problem or _anchor_problem(found, key)
    return found


def _anchor_problem(found: Inspection, key: LedgerKey) -> str | None:
    assert found.reading is not None and found.reading.header is not None
    found.anchor = key.anchor(found.reading.header.ledger_id)
    if found.anchor is not None:
        return found.anchor.problem_with(found.reading)
    if not found.reading.entries:
        return None
    return (
        f"no anchor for this ledger in {found.key_dir}: the anchor was deleted, or the ledger "
        "was written under another key directory (name it with privacy.key_dir=DIR)"
    )


def verify_report(found: Inspection, accountant: str = "rdp") -> list[str]:
    """Lines for ``ssl-fed ledger verify``: what was checked, ε and budget, then ok or the fault."""
    lines = [f"ledger: {found.path}", f"key directory: {found.key_dir}"]
    reading = found.reading
    if reading is not None and reading.header is not None:
        head = reading.header
        spent = epsilon_for_history([e.step for e in reading.entries], head.delta, accountant)
        spent += sum(r.epsilon for r in reading.releases)
        lines += [
            f"records verified: {len(reading.macs)} (header, {len(reading.entries)} trainings, "
            f"{len(reading.budgets) - 1} budget changes)",
            f"ε spent: {spent:.4f} at δ={head.delta} ({accountant.upper()}, verified records); "
            f"budget {min(reading.budgets)} (recorded at creation: {head.budget}); "
            f"privacy unit: {head.privacy_unit}",
        ]
    elif found.problem is None:
        lines.append("no ledger yet: this site has not trained with privacy on")
    if found.anchor is not None:
        lines.append(f"anchor: {found.anchor.records} lines")
    lines.append("ok" if found.problem is None else f"NOT OK: {found.problem}")
    return lines
