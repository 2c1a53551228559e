"""The site's privacy ledger: an append-only, checksummed, fsynced file of every private training.

One JSON object per line. Each entry records what the accountant needs (σ, sample rate, steps)
plus context (run id, round, sensitivity multiplier, accountant, δ, time) and a SHA-256 of its
own canonical form, so a torn or edited line is detected. ε is always recomputed from the whole
file; nothing cached can drift from it.

Notes
-----
The entry for a training is written *before* that training starts (``charge``), flushed and
fsynced. A crash after the charge over-counts (the budget is spent, no update was released),
which is the safe direction; an update can never leave without its entry on disk. A ledger that
cannot be read or fails its checksum refuses all further training with an error that says where;
it is never reset or repaired silently, because a reset would erase spent privacy.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ssl_fed.privacy.accounting import Step, epsilon_for_history

LEDGER_FILE = "privacy_ledger.jsonl"


class LedgerError(RuntimeError):
    """The ledger is unreadable or corrupt; training is refused until a person inspects it."""


class BudgetExceededError(RuntimeError):
    """A training would take the site's ε past its own budget."""


@dataclass(frozen=True)
class LedgerEntry:
    """One private training at this site."""

    run_id: str
    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    sensitivity: float
    accountant: str
    delta: float
    time: float

    @property
    def step(self) -> Step:
        """The accountant's view of this entry."""
        return (self.noise_multiplier, self.sample_rate, self.steps)


def _digest(payload: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class PrivacyLedger:
    """The file-backed history of one site, at ``<state_dir>/privacy_ledger.jsonl``.

    Parameters
    ----------
    state_dir
        The site's own directory; created if missing.
    budget
        The site's lifetime ε budget at ``delta`` (the site owns it, not the server).
    delta
        The δ every ε of this ledger is reported at.
    accountant
        ``rdp`` or ``prv``.
    """

    def __init__(
        self, state_dir: str | Path, *, budget: float, delta: float, accountant: str = "rdp"
    ) -> None:
        self.path = Path(state_dir) / LEDGER_FILE
        self.budget = budget
        self.delta = delta
        self.accountant = accountant
        self.entries = self._read()

    def _read(self) -> list[LedgerEntry]:
        if not self.path.exists():
            return []
        entries = []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise LedgerError(f"cannot read the privacy ledger {self.path}: {err}") from err
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                digest = record.pop("sha256")
                ok = digest == _digest(record)
                entry = LedgerEntry(**record)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
                raise self._corrupt(number, f"unparseable entry ({err})") from err
            if not ok:
                raise self._corrupt(number, "checksum mismatch")
            entries.append(entry)
        return entries

    def _corrupt(self, line: int, why: str) -> LedgerError:
        return LedgerError(
            f"privacy ledger {self.path} is corrupt at line {line}: {why}. Training is refused "
            "because the privacy already spent cannot be known. Restore the file from a backup; "
            "do not delete it (that would erase spent budget)."
        )

    @property
    def history(self) -> list[Step]:
        """All recorded steps, oldest first."""
        return [e.step for e in self.entries]

    def epsilon(self, extra: list[Step] | None = None) -> float:
        """ε spent over the whole history (plus ``extra`` planned steps) at this ledger's δ."""
        return epsilon_for_history([*self.history, *(extra or [])], self.delta, self.accountant)

    def remaining(self) -> float:
        """Budget left: ``budget - ε spent`` (never negative)."""
        return max(0.0, self.budget - self.epsilon())

    def check_affordable(self, planned: Step) -> float:
        """Return ε after ``planned``; raise :class:`BudgetExceededError` if over budget."""
        after = self.epsilon([planned])
        if after > self.budget + 1e-9:
            raise BudgetExceededError(
                f"training refused: it would take this site's ε from {self.epsilon():.3f} to "
                f"{after:.3f}, over its budget of {self.budget} (δ={self.delta}). Raise "
                "privacy.epsilon_budget only if the data owner agrees, or stop training here."
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
    ) -> LedgerEntry:
        """Check the budget, then durably append the entry *before* the training runs."""
        self.check_affordable((noise_multiplier, sample_rate, steps))
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
        )
        record = asdict(entry)
        record["sha256"] = _digest(asdict(entry))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.entries.append(entry)
        return entry

    def entries_for(self, run_id: str) -> list[LedgerEntry]:
        """Entries written by one run (to reuse its σ, or to avoid charging a round twice)."""
        return [e for e in self.entries if e.run_id == run_id]
