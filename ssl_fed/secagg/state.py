"""A site's secrets and bookkeeping for one SecAgg+ round, kept between messages as JSON bytes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ssl_fed.secagg.setup import RoundSetup
from ssl_fed.secagg.wire import ProtocolError

STAGES = ("advertise", "share", "collect", "consist", "unmask")


@dataclass
class ClientState:
    """Secrets and bookkeeping of one site for one round (all bytes as hex for JSON)."""

    node_id: int
    setup: dict[str, Any]
    sk_c: str
    sk_s: str
    seed: str
    done: list[str] = field(default_factory=list)
    peers: dict[str, list[str]] = field(default_factory=dict)
    held: dict[str, list[str]] = field(default_factory=dict)
    mask_ids: list[int] = field(default_factory=list)
    u3: str = ""

    def to_bytes(self) -> bytes:
        """Serialise to JSON bytes for ``Context.state``."""
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_bytes(raw: bytes) -> ClientState:
        """Inverse of :meth:`to_bytes`."""
        return ClientState(**json.loads(raw))

    def round_setup(self) -> RoundSetup:
        """Rebuild the round setup this state was created for."""
        d = dict(self.setup)
        d["round_id"] = bytes.fromhex(d["round_id"])
        d["node_ids"] = bytes.fromhex(d["node_ids"])
        d["graph_seed"] = bytes.fromhex(d["graph_seed"])
        return RoundSetup.from_payload(d)

    def advance(self, stage: str) -> None:
        """Record that ``stage`` is answered; refuse repeats and out-of-order stages."""
        expected = STAGES[len(self.done)] if len(self.done) < len(STAGES) else None
        if stage != expected:
            raise ProtocolError(f"stage {stage!r} out of order (expected {expected!r})")
        self.done.append(stage)
