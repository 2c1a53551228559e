"""The site's ledger secret and anchors, kept in a key directory *outside* the state directory.

The key directory holds ``ledger.key`` (a 256-bit secret from the OS CSPRNG, hex, mode 0600) and
one anchor per ledger it keys, ``ledger-anchor-<ledger id>.json``: the ledger's state directory,
its record count and the MAC of its last record, itself MACed. The directory is created 0700.
In deployment it is the directory of the site's node key (``site start --key``); in train-local
and simulation it is ``privacy.key_dir``, by default ``<state_dir>.keys`` beside the state dir.

Notes
-----
Guarantee: the anchor only moves forward (a smaller count is refused), and it is written after
the ledger line it describes, atomically (temporary file, fsync, rename). A ledger shorter than
its anchor, one whose line at the anchor's count has another MAC, and a missing ledger (or state
directory) whose anchor remains are all detected. Deleting the key directory *and* the state
directory together cannot be detected on the site alone: nothing local remembers them. In
deployment the server's record of the rounds a node trained in, compared with the ledger length
the site reports, is the check that remains; keep the key directory on other storage than the
state directory, and back it up.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ssl_fed.privacy.ledger_records import ChainReading, LedgerError

KEY_FILE = "ledger.key"
ANCHOR_PREFIX = "ledger-anchor-"


def default_key_dir(state_dir: str | Path) -> Path:
    """``<state_dir>.keys``: a sibling of the state directory, not inside it."""
    state = Path(state_dir).resolve()
    return state.with_name(state.name + ".keys")


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` as ``path`` (0600) atomically; with ``exclusive``, never over a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class Anchor:
    """Where one ledger stood after its last write."""

    ledger_id: str
    state_dir: str
    records: int
    last_mac: str

    def problem_with(self, reading: ChainReading) -> str | None:
        """Say what is wrong with ``reading`` given this anchor (``None`` when it is consistent)."""
        if self.records < 1:
            return "the anchor records no lines; restore it from a backup"
        if self.records > len(reading.macs):
            return (
                f"cut short: the anchor records {self.records} lines, the ledger has "
                f"{len(reading.macs)} (lines were deleted at its end, or an older copy restored)"
            )
        if reading.macs[self.records - 1] != self.last_mac:
            return f"line {self.records}: differs from the anchor (the ledger was replaced)"
        return None


class LedgerKey:
    """The ledger secret of one key directory, and the anchors of the ledgers it keys."""

    def __init__(self, key_dir: Path, secret: bytes) -> None:
        self.key_dir = key_dir
        self._secret = secret

    @classmethod
    def open(cls, key_dir: str | Path, *, create: bool) -> LedgerKey | None:
        """Load the secret of ``key_dir``; create it (dir 0700, file 0600) only when asked."""
        key_dir = Path(key_dir)
        path = key_dir / KEY_FILE
        if not path.exists():
            if not create:
                return None
            key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(key_dir, 0o700)
            with contextlib.suppress(FileExistsError):
                _write_private(path, secrets.token_hex(32).encode(), exclusive=True)
        if path.stat().st_mode & 0o077:
            raise LedgerError(f"ledger key {path} is readable by others: run `chmod 600 {path}`")
        try:
            secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as err:
            raise LedgerError(f"ledger key {path} is unreadable ({err}); restore it") from err
        if len(secret) != 32:
            raise LedgerError(f"ledger key {path} is not 256 bits; restore it from a backup")
        return cls(key_dir, secret)

    def mac(self, payload: dict[str, object]) -> str:
        """HMAC-SHA256 of ``payload``'s canonical JSON under this secret."""
        body = json.dumps(payload, sort_keys=True).encode()
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def _anchor_path(self, ledger_id: str) -> Path:
        return self.key_dir / f"{ANCHOR_PREFIX}{ledger_id}.json"

    def _read_anchor(self, path: Path) -> Anchor:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            claimed = record.pop("mac")
            anchor = Anchor(**record)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise LedgerError(f"ledger anchor {path} is unreadable ({err}); restore it") from err
        if not hmac.compare_digest(str(claimed), self.mac(asdict(anchor))):
            raise LedgerError(f"ledger anchor {path} fails its MAC: it was edited; restore it")
        return anchor

    def anchor(self, ledger_id: str) -> Anchor | None:
        """Return the anchor of the ledger ``ledger_id``, if this key directory holds one."""
        path = self._anchor_path(ledger_id)
        return self._read_anchor(path) if path.exists() else None

    def anchor_of(self, state_dir: str | Path) -> Anchor | None:
        """Return the anchor that names ``state_dir`` (to tell a deleted ledger from a new site)."""
        wanted = str(Path(state_dir).resolve())
        for path in sorted(self.key_dir.glob(f"{ANCHOR_PREFIX}*.json")):
            anchor = self._read_anchor(path)
            if anchor.state_dir == wanted:
                return anchor
        return None

    def advance(self, anchor: Anchor) -> None:
        """Record ``anchor``; refuse to move an existing anchor backwards."""
        old = self.anchor(anchor.ledger_id)
        if old is not None and old.records > anchor.records:
            raise LedgerError(
                f"refusing to move the anchor of ledger {anchor.ledger_id} back from "
                f"{old.records} to {anchor.records} records"
            )
        record: dict[str, object] = {**asdict(anchor), "mac": self.mac(asdict(anchor))}
        _write_private(self._anchor_path(anchor.ledger_id), json.dumps(record).encode())
