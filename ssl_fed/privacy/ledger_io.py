"""The ledger's durable writes (create once, append under a lock) and its terms checks.

Notes
-----
Both write, flush and fsync before returning, so a line the caller goes on to rely on (a charge
before its training) is on disk. ``create_exclusive`` never replaces an existing file (a ledger
is never reset); ``append_locked`` refuses when the file's size is not the one the caller read,
so two processes cannot interleave lines of one MAC chain.
"""

from __future__ import annotations

import fcntl
import math
import os
from pathlib import Path

from ssl_fed.privacy.ledger_records import BudgetRaiseError, LedgerError, LedgerHeader


def create_exclusive(path: Path, line: bytes) -> None:
    """Create ``path`` holding ``line``; raise :class:`LedgerError` if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as err:
        raise LedgerError(f"{path} appeared while it was created; open it again") from err
    with os.fdopen(fd, "wb") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def append_locked(path: Path, expected_size: int, line: bytes) -> int:
    """Append ``line`` if ``path`` still has ``expected_size`` bytes; return the new size."""
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if os.fstat(fh.fileno()).st_size != expected_size:
            raise LedgerError(
                f"{path} changed since it was opened (another process wrote to it); open it again"
            )
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return expected_size + len(line)


def check_terms(
    header: LedgerHeader, path: Path, *, delta: float | None, privacy_unit: str | None
) -> None:
    """Refuse a δ or (for a writer) a privacy unit other than the ones ``path`` records."""
    if delta is not None and not math.isclose(delta, header.delta, rel_tol=1e-12):
        raise LedgerError(
            f"privacy.delta={delta} differs from δ={header.delta} recorded in {path}: a "
            f"site's ε and budget are stated at one δ; run with privacy.delta={header.delta}"
        )
    if privacy_unit is not None and privacy_unit != header.privacy_unit:
        raise LedgerError(
            f"privacy unit {privacy_unit!r} differs from {header.privacy_unit!r} recorded in "
            f"{path}: ε over one history must count one kind of unit. To switch, "
            "start a new, separately labelled budget in a new state_dir (the old ledger "
            "keeps stating what was spent per its unit); see PrivacyLedger's Notes"
        )


def check_budget_change(current: float, asked: float, delta: float, path: Path) -> bool:
    """Refuse a raise (:class:`BudgetRaiseError`); return whether ``asked`` lowers the budget."""
    if asked > current * (1 + 1e-12):
        raise BudgetRaiseError(
            f"ε budget {asked} is larger than the budget {current} (δ={delta}) "
            f"recorded in {path}; a site's budget can only be lowered. Run with "
            f"privacy.epsilon_budget={current} (and privacy.target_epsilon at most that)."
        )
    return asked < current * (1 - 1e-12)
