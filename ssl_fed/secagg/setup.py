"""The round setup every site receives first: who takes part, graph, threshold and encoding.

The paper's round 0 (Bell et al., CCS 2020, Fig. 5) fixes the parameters and the participant
set; here it travels with the request to advertise keys, saving one round trip.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.graph import build_neighbours
from ssl_fed.secagg.modular import encode_modular
from ssl_fed.secagg.params import RoundShape
from ssl_fed.secagg.quantize import EXTRA_WORDS, UINT_DTYPES, encode_weighted_into
from ssl_fed.secagg.wire import (
    Payload,
    ProtocolError,
    check_header,
    get_bytes,
    get_float,
    get_ids,
    get_int,
    header,
    ids_to_bytes,
)

ArraySpec = list[tuple[str, tuple[int, ...]]]


@dataclass(frozen=True)
class RoundSetup:
    """Everything fixed at the start of a round, identical at the server and every site."""

    round_id: bytes
    node_ids: list[int]
    shape: RoundShape
    clip_range: float
    max_weight: int
    graph_seed: bytes
    spec: ArraySpec

    def __post_init__(self) -> None:
        if self.shape.n * self.dim >= 2**self.shape.word_bits:
            raise ProtocolError(
                f"{self.shape.n} sites x {self.dim} values would overflow the clip-count word "
                f"({self.shape.word_bits} bits); set a larger value_bits (64-bit words)"
            )

    @property
    def dim(self) -> int:
        """Number of float values aggregated (the masked vector adds the clip count and weight)."""
        return sum(math.prod(s) for _, s in self.spec)

    @property
    def length(self) -> int:
        """Words in a masked vector: ``dim`` values, the clip count and the weight."""
        return self.dim + EXTRA_WORDS

    @property
    def dtype(self) -> type[np.unsignedinteger[Any]]:
        """Wire dtype of masked vectors: the smallest unsigned word that cannot overflow."""
        return UINT_DTYPES[self.shape.word_bits]

    def encode(self, arrays: Mapping[str, NDArray[Any]], weight: float) -> NDArray[Any]:
        """Check a site's update against the spec and encode it with its weight (quantize.py).

        Raises ``ValueError`` naming the offending array or weight, so the site's operator can fix
        the train handler (names and shapes must match the global model exactly). Fixed-point
        values are encoded chunk by chunk into one fresh ``uint{b}`` vector, which the site then
        masks in place and sends (no concatenated or float64 copy of the update).
        """
        if set(arrays) != {n for n, _ in self.spec}:
            raise ValueError(
                f"update arrays {sorted(arrays)} differ from the round's "
                f"{[n for n, _ in self.spec]}; return one array per model entry"
            )
        if not (float(weight).is_integer() and 0 <= weight <= self.max_weight):
            raise ValueError(
                f"weight must be an integer in [0, max_weight={self.max_weight}], "
                f"got {weight}; raise max_weight in the server's SecAggConfig"
            )
        parts = []
        for name, shape in self.spec:
            a = np.asarray(arrays[name])
            if a.shape != shape or not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"array {name!r} has shape {a.shape}, the round expects {shape}")
            parts.append((name, a))
        if self.shape.modular_bits:
            flat = np.concatenate([a.ravel() for _, a in parts]) if parts else np.zeros(0, int)
            return encode_modular(flat, int(weight), self.shape.modular_bits, self.shape.word_bits)
        out = np.empty(self.length, dtype=self.dtype)
        encode_weighted_into(out, parts, int(weight), self.clip_range, self.shape.value_bits)
        return out

    def split(self, flat: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Cut a decoded flat vector back into the spec's named arrays."""
        out, pos = {}, 0
        for name, shape in self.spec:
            size = math.prod(shape)
            out[name] = flat[pos : pos + size].reshape(shape)
            pos += size
        return out

    def digest(self) -> bytes:
        """SHA-256 of the whole setup: what every signature of the round is bound to."""
        return hashlib.sha256(repr(sorted(self.to_payload().items())).encode()).digest()

    def neighbours(self) -> dict[int, list[int]]:
        """Rebuild the seeded k-regular neighbour graph (identical at every site)."""
        return build_neighbours(self.node_ids, self.shape.k, self.graph_seed)

    def to_payload(self) -> Payload:
        """Serialise as a ConfigRecord-compatible dict for the advertise-keys request."""
        p = header("advertise", self.round_id)
        s = self.shape
        p.update(
            node_ids=ids_to_bytes(self.node_ids),
            k=s.k,
            t=s.t,
            min_survivors=s.min_survivors,
            value_bits=s.value_bits,
            word_bits=s.word_bits,
            modular_bits=s.modular_bits,
            clip_range=self.clip_range,
            max_weight=self.max_weight,
            graph_seed=self.graph_seed,
            names=[n for n, _ in self.spec],
            ndims=[len(sh) for _, sh in self.spec],
            dims=[d for _, sh in self.spec for d in sh],
        )
        return p

    @staticmethod
    def from_payload(p: Mapping[str, Any]) -> RoundSetup:
        """Parse and validate a setup payload; raises :class:`ProtocolError` with the reason."""
        round_id = get_bytes(p, "round_id", 16)
        check_header(p, "advertise", round_id)
        ids = get_ids(p, "node_ids")
        n = len(ids)
        k = get_int(p, "k", 2, max(2, n - 1))
        t = get_int(p, "t", 2, k)
        if 2 * t <= k:
            raise ProtocolError(f"unsafe threshold t={t} for k={k}: need t > k/2")
        shape = RoundShape(
            n,
            k,
            t,
            get_int(p, "min_survivors", 2, n),
            get_int(p, "value_bits", 2, 52),
            get_int(p, "word_bits", 16, 64),
        )
        if shape.word_bits not in (16, 32, 64):
            raise ProtocolError(f"word_bits must be 16, 32 or 64, got {shape.word_bits}")
        if "modular_bits" in p:  # absent from a fixed-point-only server: fixed-point
            shape = replace(shape, modular_bits=get_int(p, "modular_bits", 0, shape.word_bits))
        max_weight = get_int(p, "max_weight", 1, 2**62)
        if shape.modular_bits and n * max_weight >= 2**shape.word_bits:
            raise ProtocolError("max_weight would let the weight word overflow")
        levels = 2**shape.value_bits - 1
        if not shape.modular_bits and n * max_weight * levels >= 2**shape.word_bits:
            raise ProtocolError("value_bits/word_bits/max_weight would let the sum overflow")
        clip = get_float(p, "clip_range")
        if not (math.isfinite(clip) and clip > 0):
            raise ProtocolError(f"clip_range must be positive and finite, got {clip}")
        names, ndims, dims = p.get("names"), p.get("ndims"), p.get("dims")
        if not (isinstance(names, list) and isinstance(ndims, list) and isinstance(dims, list)):
            raise ProtocolError("names, ndims and dims must be lists")
        if len(names) != len(ndims) or sum(ndims) != len(dims) or any(d < 0 for d in dims):
            raise ProtocolError("array spec lists are inconsistent")
        spec: ArraySpec = []
        pos = 0
        for name, nd in zip(names, ndims, strict=True):
            spec.append((str(name), tuple(int(d) for d in dims[pos : pos + nd])))
            pos += nd
        return RoundSetup(round_id, ids, shape, clip, max_weight, get_bytes(p, "graph_seed"), spec)
