"""The site's privacy ledger: an append-only, MAC-chained, anchored, fsynced file of every training.

One JSON object per line at ``<state_dir>/privacy_ledger.jsonl`` (format:
:mod:`ssl_fed.privacy.ledger_records`). Line 1 is the header with the site's budget, δ, accountant
and privacy unit; each training is a ``charge`` line with what the accountant needs (σ, sample
rate, steps) plus context (run id, round, sensitivity multiplier, time). Every line is MACed with
a 256-bit site secret kept outside the state directory and chained to the line before it; an
anchor beside the secret remembers how long the ledger is (:mod:`ssl_fed.privacy.ledger_key`).
ε is always recomputed from the whole file; nothing cached can drift from it.

Notes
-----
Guarantees. The entry for a training is written *before* that training starts (``charge``),
flushed and fsynced, and only then is the anchor advanced. A crash after the charge over-counts
(budget spent, no update released), the safe direction; an update never leaves without its entry
on disk. A ledger that is edited (even with a recomputed checksum), has a line deleted, inserted
or reordered, is cut short, was replaced by an older copy, or is missing while its anchor
remains, refuses all training with a :class:`LedgerError` naming the fault; nothing is reset or
repaired silently, because a reset would erase spent privacy. The budget lives in the header and
can only be lowered: opening with a larger budget raises :class:`BudgetRaiseError`, a smaller one
is appended as a chained ``budget`` line, and the budget in force is the minimum ever recorded.
Deleting the state directory *and* the key directory cannot be detected on the site alone (nothing
local remains); in deployment, compare ``len(ledger)`` (the trainings it holds) with the server's
record of the rounds the node trained in.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import asdict
from pathlib import Path

from ssl_fed.privacy.accounting import Step
from ssl_fed.privacy.ledger_check import LEDGER_FILE, inspect_ledger
from ssl_fed.privacy.ledger_epsilon import history_epsilon, skellam_step
from ssl_fed.privacy.ledger_io import (
    append_locked,
    check_budget_change,
    check_terms,
    create_exclusive,
)
from ssl_fed.privacy.ledger_key import Anchor, LedgerKey
from ssl_fed.privacy.ledger_records import (
    BudgetExceededError,
    BudgetRaiseError,
    LedgerEntry,
    LedgerError,
    LedgerHeader,
    ReleaseEntry,
    encode,
    header_record,
    seal,
)
from ssl_fed.privacy.skellam import SkellamStep

__all__ = [
    "LEDGER_FILE",
    "BudgetExceededError",
    "BudgetRaiseError",
    "LedgerEntry",
    "LedgerError",
    "PrivacyLedger",
    "skellam_step",
]


class PrivacyLedger:
    """The verified history of one site.

    Parameters
    ----------
    state_dir
        The site's own directory; created if missing.
    budget
        The site's lifetime ε budget at ``delta`` (the site owns it, not the server). It is
        recorded at creation and may only be lowered. ``None`` opens an existing ledger read-only
        with its recorded budget (to show or report it; nothing is written).
    delta
        The δ of every ε of this ledger; must equal the recorded one (``None``: the recorded one).
    accountant
        ``rdp`` or ``prv``: how ε is computed from the recorded steps.
    key_dir
        Where the ledger secret and anchor live, outside ``state_dir`` (default
        ``<state_dir>.keys``; in deployment, the directory of the site's node key).
    privacy_unit
        What one unit is, ``image`` or ``person`` (recorded at creation; a writable open refuses
        a different one).

    Notes
    -----
    One ledger, one unit. ε composes over a history only when every entry protects the same
    unit: a per-image entry protects a person with k images only at the group-privacy bound
    (about k·ε, k private and unbounded), so it cannot be added into a per-person ε. Switching
    ``privacy.unit`` therefore starts a new, separately labelled budget: a new ledger in a new
    ``state_dir`` whose header records the new unit, while the old ledger keeps stating what
    was spent per its unit; a person's history is described by both, never one merged number.
    """

    def __init__(
        self,
        state_dir: str | Path,
        *,
        budget: float | None = None,
        delta: float | None = None,
        accountant: str = "rdp",
        key_dir: str | Path | None = None,
        privacy_unit: str = "image",
    ) -> None:
        found = inspect_ledger(state_dir, key_dir)
        self.state_dir, self.path, self.key_dir = Path(state_dir), found.path, found.key_dir
        self.accountant, self.read_only = accountant, budget is None
        self.header: LedgerHeader
        self.entries: list[LedgerEntry] = []
        self.releases: list[ReleaseEntry] = []
        self._budgets: list[float] = []
        self._macs: list[str] = []
        self._size = 0
        if found.problem is not None:
            raise self._refuse(found.problem)
        if found.reading is None:
            if budget is None:
                raise LedgerError(f"no privacy ledger at {self.path}: nothing to show or verify")
            if delta is None:
                raise ValueError("a new ledger needs delta")
            ledger_id, now = secrets.token_hex(8), time.time()
            header = LedgerHeader(
                ledger_id, float(budget), float(delta), accountant, privacy_unit, now
            )
            key = LedgerKey.open(self.key_dir, create=True)
            assert key is not None
            self._key = key
            self._create(header)
            return
        assert found.key is not None and found.reading.header is not None
        self._key = found.key
        self.header = found.reading.header
        self.entries, self.releases = found.reading.entries, found.reading.releases
        self._budgets, self._macs = found.reading.budgets, found.reading.macs
        self._size = self.path.stat().st_size
        self._check_terms(delta, privacy_unit)
        if budget is not None:
            self._roll_anchor_forward(found.anchor)
            self._apply_budget(float(budget))

    def _refuse(self, problem: str) -> LedgerError:
        return LedgerError(
            f"privacy ledger {self.path}: {problem}. Training is refused because the privacy "
            "already spent cannot be known; `ssl-fed ledger verify` shows the details. Restore "
            "the state directory and key directory from a backup; do not delete either (that "
            "would erase spent budget)."
        )

    def _create(self, header: LedgerHeader) -> None:
        self.header, self.entries, self._budgets = header, [], [header.budget]
        record = header_record(header, self._key.mac)
        line = encode(record)
        create_exclusive(self.path, line)
        self._macs, self._size = [str(record["mac"])], len(line)
        self._advance()

    def _check_terms(self, delta: float | None, privacy_unit: str) -> None:
        unit = None if self.read_only else privacy_unit
        check_terms(self.header, self.path, delta=delta, privacy_unit=unit)

    def require_unit(self, privacy_unit: str) -> None:
        """Raise :class:`LedgerError` unless this ledger's recorded unit is ``privacy_unit``."""
        self._check_terms(None, privacy_unit)

    def _roll_anchor_forward(self, anchor: Anchor | None) -> None:
        if anchor is None or anchor.records < len(self._macs) or anchor.state_dir != self._where:
            self._advance()

    def _apply_budget(self, budget: float) -> None:
        if check_budget_change(self.budget, budget, self.delta, self.path):
            self._append("budget", {"budget": budget, "time": time.time()})
            self._budgets.append(budget)

    @property
    def _where(self) -> str:
        return str(self.state_dir.resolve())

    @property
    def budget(self) -> float:
        """The budget in force: the smallest ever recorded (creation, then every lowering)."""
        return min(self._budgets)

    @property
    def delta(self) -> float:
        """The δ recorded at creation."""
        return self.header.delta

    def __len__(self) -> int:
        """Trainings recorded (what a server's count of this site's rounds can be compared with)."""
        return len(self.entries)

    def _append(self, kind: str, fields: dict[str, object]) -> None:
        """Durably append one sealed line, then advance the anchor (one writer at a time)."""
        self._require_writable()
        record = seal(kind, fields, self._macs[-1], self._key.mac)
        line = encode(record)
        self._size = append_locked(self.path, self._size, line)
        self._macs.append(str(record["mac"]))
        self._advance()

    def _require_writable(self) -> None:
        if self.read_only:
            raise LedgerError(f"{self.path} was opened read-only (no budget given): not written")

    def _advance(self) -> None:
        anchor = Anchor(self.header.ledger_id, self._where, len(self._macs), self._macs[-1])
        self._key.advance(anchor)

    @property
    def history(self) -> list[Step]:
        """All recorded steps, oldest first."""
        return [e.step for e in self.entries]

    def epsilon(
        self, extra: list[Step] | None = None, skellam: list[SkellamStep] | None = None
    ) -> float:
        """ε spent over the whole history (plus planned steps) at this ledger's δ.

        Distributed-noise entries are Skellam steps; a history that holds any is composed by
        RDP with :func:`ssl_fed.privacy.skellam.epsilon_for_history` (Gaussian steps exactly).
        Pure ε-DP releases (:class:`ReleaseEntry`, drift alarms) add by basic composition.
        """
        return history_epsilon(
            self.entries, self.releases, self.delta, self.accountant, extra or (), skellam or ()
        )

    def remaining(self) -> float:
        """Budget left: ``budget - ε spent`` (never negative)."""
        return max(0.0, self.budget - self.epsilon())

    def check_affordable(self, planned: Step | SkellamStep) -> float:
        """Return ε after ``planned``; raise :class:`BudgetExceededError` past the budget."""
        if isinstance(planned, SkellamStep):
            after = self.epsilon(skellam=[planned])
        else:
            after = self.epsilon([planned])
        if after > self.budget + 1e-9:
            raise BudgetExceededError(
                f"training refused: it would take this site's ε from {self.epsilon():.3f} to "
                f"{after:.3f}, over the budget of {self.budget} (δ={self.delta}) recorded in its "
                "ledger. Stop training here; a budget can only be lowered."
            )
        return after

    def charge(
        self,
        *,
        run_id: str,
        round: int,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        sensitivity: float,
        ddp: dict[str, float] | None = None,
    ) -> LedgerEntry:
        """Check the budget, then durably append the entry *before* the training runs.

        ``ddp`` (distributed noise): Δ2, Δ1 (integer units), bits, γ and min_noisy_sites of the
        round; ``noise_multiplier`` is then the aggregate σ relative to Δ2.
        """
        self._require_writable()
        gauss: Step = (noise_multiplier, sample_rate, steps)
        self.check_affordable(gauss if ddp is None else skellam_step(gauss, ddp))
        entry = LedgerEntry(
            run_id,
            round,
            noise_multiplier,
            sample_rate,
            steps,
            sensitivity,
            self.accountant,
            self.delta,
            time.time(),
            "gaussian" if ddp is None else "skellam",
            ddp,
        )
        return self.record(entry)

    def charge_release(
        self, *, run_id: str, round: int, epsilon: float, mechanism: str
    ) -> ReleaseEntry:
        """Check the budget, then durably append a pure ε-DP release *before* it is made."""
        self._require_writable()
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"release epsilon={epsilon} is invalid: use a finite number > 0")
        if self.epsilon() + epsilon > self.budget + 1e-9:
            raise BudgetExceededError(
                f"release refused: it would take this site's ε from {self.epsilon():.3f} to "
                f"{self.epsilon() + epsilon:.3f}, over its budget of {self.budget}"
            )
        entry = ReleaseEntry(run_id, round, float(epsilon), mechanism, time.time())
        self._append("release", asdict(entry))
        self.releases.append(entry)
        return entry

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Append a training that already happened, without a budget check (migration only)."""
        self._require_writable()
        self._append("charge", entry.fields())
        self.entries.append(entry)
        return entry

    def entries_for(self, run_id: str) -> list[LedgerEntry]:
        """Entries written by one run (to reuse its σ, or to avoid charging a round twice)."""
        return [e for e in self.entries if e.run_id == run_id]
