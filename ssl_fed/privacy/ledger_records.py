"""The ledger's lines: a header, trainings and budget changes, each MACed and chained to the last.

Format 2 is one JSON object per line, keys sorted. Line 1 is the header (ledger id, budget, δ,
accountant, privacy unit, creation time); after it come ``charge`` records (one private training)
and ``budget`` records (the operator lowered the budget). Every record carries ``prev``, the MAC of
the record before it (``""`` for the header), and ``mac``, an HMAC-SHA256 (Bellare, Canetti &
Krawczyk 1996; RFC 2104) under the site's ledger secret of the record's canonical JSON without
``mac``. Each MAC therefore covers the whole chain up to that line.

Notes
-----
Guarantee: without the secret nobody can write a record the ledger accepts. An edited line fails
its MAC even if a plain checksum is recomputed; a deleted, inserted or reordered line breaks the
chain at the first line after it; a line from another ledger breaks it at once, because each
chain starts at its own header. What a chain cannot show alone is a cut at its *end* (a shorter
valid prefix) or a missing file: the anchor beside the secret (:mod:`ssl_fed.privacy.ledger_key`)
covers those.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from ssl_fed.privacy.accounting import Step
from ssl_fed.privacy.skellam import SkellamStep

FORMAT = 2

Mac = Callable[[dict[str, object]], str]

LEGACY = (
    "the ledger is in the old unkeyed format (plain SHA-256 lines, no header, no MAC chain), "
    "which cannot show an edit or a deletion. Migrate it once with `ssl-fed ledger migrate "
    "state_dir=DIR privacy.epsilon_budget=B` (keeps every entry, records the budget B in a new "
    "header and MACs the chain; the old file is kept beside it as privacy_ledger.v1.jsonl)"
)


class LedgerError(RuntimeError):
    """The ledger is unreadable, corrupt, cut short or missing; training is refused."""


class BudgetExceededError(RuntimeError):
    """A training would take the site's ε past its own budget."""


class BudgetRaiseError(BudgetExceededError):
    """A command asked for a larger budget than the ledger records; budgets can only be lowered."""


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
    mechanism: str = "gaussian"
    ddp: dict[str, float] | None = None

    @property
    def step(self) -> Step:
        """The accountant's view of this entry."""
        return (self.noise_multiplier, self.sample_rate, self.steps)

    @property
    def skellam_step(self) -> SkellamStep | None:
        """A distributed-noise entry as the Skellam accountant's step (``ddp`` holds Δ2, Δ1)."""
        if self.mechanism != "skellam" or self.ddp is None:
            return None
        l2, l1 = float(self.ddp["l2_sensitivity"]), float(self.ddp["l1_sensitivity"])
        return SkellamStep(self.noise_multiplier, self.sample_rate, self.steps, l2, l1)

    def fields(self) -> dict[str, object]:
        """Return the record's fields (a local-noise entry is written as before distributed DP)."""
        out = asdict(self)
        if self.mechanism == "gaussian" and self.ddp is None:
            del out["mechanism"], out["ddp"]
        return out


@dataclass(frozen=True)
class ReleaseEntry:
    """One pure ε-DP release other than training (a drift alarm, :mod:`ssl_fed.monitor`).

    It composes with the trainings by basic composition (Dwork & Roth 2014, Thm 3.16): the
    ledger's ε at δ is the accountant's ε of the trainings plus the sum of these ε.
    """

    run_id: str
    round: int
    epsilon: float
    mechanism: str
    time: float


@dataclass(frozen=True)
class LedgerHeader:
    """What the site's ledger was created with (line 1)."""

    ledger_id: str
    budget: float
    delta: float
    accountant: str
    privacy_unit: str
    created: float


@dataclass
class ChainReading:
    """What a ledger file holds, verified line by line up to the first problem."""

    header: LedgerHeader | None = None
    entries: list[LedgerEntry] = field(default_factory=list)
    releases: list[ReleaseEntry] = field(default_factory=list)
    budgets: list[float] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def last_mac(self) -> str:
        """MAC of the last verified record (``""`` before the header)."""
        return self.macs[-1] if self.macs else ""


def seal(kind: str, fields: dict[str, object], prev: str, mac: Mac) -> dict[str, object]:
    """Return the record ``kind`` with ``fields``, chained to ``prev`` and MACed."""
    record: dict[str, object] = {"kind": kind, **fields, "prev": prev}
    record["mac"] = mac(record)
    return record


def header_record(header: LedgerHeader, mac: Mac) -> dict[str, object]:
    """Return the sealed header line of a new ledger."""
    return seal("header", {"format": FORMAT, **asdict(header)}, "", mac)


def encode(record: dict[str, object]) -> bytes:
    """One ledger line."""
    return (json.dumps(record, sort_keys=True) + "\n").encode()


def is_legacy(line: str) -> bool:
    """Whether ``line`` is a format-1 entry (plain SHA-256, no header)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and "kind" not in record and "sha256" in record


def read_chain(lines: list[str], mac: Mac) -> ChainReading:
    """Verify ``lines`` in order; stop at the first bad one and say which and why."""
    reading = ChainReading()
    if not lines:
        reading.problem = "line 1: the file is empty (no header)"
    for number, line in enumerate(lines, start=1):
        why = _accept(reading, line, number, mac)
        if why is not None:
            reading.problem = f"line {number}: {why}"
            break
    return reading


def _accept(reading: ChainReading, line: str, number: int, mac: Mac) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return "unparseable (a torn write or a hand edit)"
    if not isinstance(record, dict):
        return "not a JSON object"
    if number == 1 and is_legacy(line):
        return LEGACY
    claimed = record.pop("mac", None)
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, mac(record)):
        return "MAC mismatch (the line was edited, or written under another key)"
    if record.pop("prev", None) != reading.last_mac:
        return "chain broken (a line before it was deleted, inserted or reordered)"
    kind = record.pop("kind", None)
    why = _store(reading, kind, record, number)
    if why is None:
        reading.macs.append(claimed)
    return why


def _store(
    reading: ChainReading, kind: object, record: dict[str, object], number: int
) -> str | None:
    if (kind == "header") != (number == 1):
        return f"a {kind!r} record where {'the header' if number == 1 else 'no header'} belongs"
    try:
        if kind == "header":
            if record.pop("format", None) != FORMAT:
                return f"unknown ledger format (this ssl-fed reads format {FORMAT})"
            reading.header = LedgerHeader(**record)  # type: ignore[arg-type]
            reading.budgets.append(float(reading.header.budget))
        elif kind == "charge":
            reading.entries.append(LedgerEntry(**record))  # type: ignore[arg-type]
        elif kind == "release":
            reading.releases.append(ReleaseEntry(**record))  # type: ignore[arg-type]
        elif kind == "budget":
            reading.budgets.append(float(record["budget"]))  # type: ignore[arg-type]
        else:
            return f"unknown record kind {kind!r}"
    except (TypeError, KeyError, ValueError) as err:
        return f"malformed {kind} record ({err})"
    return None
