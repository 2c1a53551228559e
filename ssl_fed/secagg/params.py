"""Round parameters of ssl-fed's SecAgg+: neighbourhood size, threshold, word and value bits.

The protocol is SecAgg+ of Bell, Bonawitz, Gascón, Lepoint and Raykova, "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020 (arXiv 2002.04156). Each site shares its
secrets with ``k`` neighbours of a k-regular graph instead of with all ``n - 1`` sites (paper §3.1),
and any ``t`` of those neighbours can reconstruct them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ssl_fed.secagg.modular import container_bits

PROTOCOL_VERSION = "ssl-fed-secagg+/2"
WORD_BITS = (16, 32, 64)
MAX_VALUE_BITS_AUTO = 24


@dataclass(frozen=True)
class SecAggConfig:
    """User-facing settings of one secure-aggregation round.

    Parameters
    ----------
    clip_range : float
        Each update value is clipped to ``[-clip_range, clip_range]`` before fixed-point encoding.
        Choose it to cover the real update magnitudes (deltas, not raw weights).
    value_bits : int | None
        Bits per encoded value ``q``. ``None`` picks the largest ``q <= 24`` that fits a 32-bit word
        for the round's ``n`` and ``max_weight`` (falling back to 64-bit words when fewer than 16
        bits would remain). The per-coordinate error of the weighted mean is at most
        ``clip_range / (2**q - 1)`` (see :mod:`ssl_fed.secagg.quantize`).
    max_weight : int
        Largest integer weight (e.g. example count) a site may contribute; larger weights are an
        error at the site. It sets the word size, so keep it tight.
    num_neighbours : int | None
        ``k``, the degree of the neighbour graph. ``None``: ``min(n - 1, 2 * ceil(log2 n))``, the
        O(log n) choice of the paper (§3.1; complete graph for small ``n``).
    threshold : int | None
        ``t``, how many of a site's neighbours must survive to reconstruct its secrets. ``None``:
        ``k // 2 + 1``. Must satisfy ``k / 2 < t <= k`` and ``t >= 2``: with ``t <= k/2`` a server
        could collect self-mask shares from one half and key shares from the other (paper §3.2).
    min_survivors : int | None
        Fewest masked inputs the server may unmask; fewer skips the round. ``None``: ``t``.
    stage_timeout : float
        Seconds to wait for replies in the key, share and unmasking stages.
    train_timeout : float
        Seconds to wait in the masked-input stage, which includes local training.
    array_key, weight_key : str
        Where the wrapped train handler's reply keeps its ArrayRecord and its weight in the
        MetricRecord (Flower's Message-API defaults ``"arrays"`` and ``"num-examples"``).
    clear_metrics : bool
        If true, the other scalars of the MetricRecord that holds the weight travel *in the clear*
        beside the masked vector and reach the caller per survivor
        (:attr:`~ssl_fed.secagg.result.AggregateResult.clear`). Only for scalars that may leave a
        site individually (e.g. a guard-checked whitelist of mean losses and ε spent); default off,
        so nothing but the masked vector leaves.
    fixed_weight : int | None
        If set, every site's weight must equal it, and the server rejects a round whose decoded
        total weight is not ``fixed_weight`` times the number of survivors (a forged weight word).
        ``None``: any total in ``(0, survivors * max_weight]`` is accepted.
    modular_bits : int | None
        If set, sites send integers summed modulo ``2^modular_bits`` (distributed DP,
        :mod:`ssl_fed.secagg.modular`) instead of clipped fixed-point floats; ``clip_range`` and
        ``value_bits`` are then unused and the result carries the raw sum words.
    """

    clip_range: float = 8.0
    value_bits: int | None = None
    max_weight: int = 1000
    num_neighbours: int | None = None
    threshold: int | None = None
    min_survivors: int | None = None
    stage_timeout: float = 60.0
    train_timeout: float = 600.0
    array_key: str = "arrays"
    weight_key: str = "num-examples"
    clear_metrics: bool = False
    fixed_weight: int | None = None
    modular_bits: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip_range) and self.clip_range > 0):
            raise ValueError(f"clip_range must be a positive finite float, got {self.clip_range}")
        if self.max_weight < 1:
            raise ValueError(f"max_weight must be >= 1, got {self.max_weight}")
        if self.value_bits is not None and not 2 <= self.value_bits <= 52:
            raise ValueError(f"value_bits must be in [2, 52] or None (auto), got {self.value_bits}")
        if self.fixed_weight is not None and not 0 < self.fixed_weight <= self.max_weight:
            raise ValueError(
                f"fixed_weight must be in [1, max_weight={self.max_weight}], "
                f"got {self.fixed_weight}"
            )
        if self.modular_bits is not None and not 8 <= self.modular_bits <= 62:
            raise ValueError(f"modular_bits must be in [8, 62] or None, got {self.modular_bits}")
        if self.stage_timeout <= 0 or self.train_timeout <= 0:
            raise ValueError("stage_timeout and train_timeout must be positive seconds")


@dataclass(frozen=True)
class RoundShape:
    """Parameters resolved for ``n`` sampled sites: graph degree, threshold and word layout."""

    n: int
    k: int
    t: int
    min_survivors: int
    value_bits: int
    word_bits: int
    modular_bits: int = 0


def _max_value_bits(word_bits: int, n: int, max_weight: int) -> int:
    """Largest ``q`` with ``n * max_weight * (2**q - 1) <= 2**word_bits - 1`` (no sum overflows)."""
    limit: int = (2**word_bits - 1) // (n * max_weight) + 1
    return limit.bit_length() - 1


def resolve_round(n: int, cfg: SecAggConfig) -> RoundShape:
    """Resolve the graph and encoding parameters for ``n`` sites, or raise with the fix.

    The word size ``b`` is the smallest of 16/32/64 with ``n * W * (2**q - 1) < 2**b``, so the sum
    of all ``n`` weighted inputs (and of the ``n`` weights) cannot wrap mod ``2**b`` (paper §2:
    inputs
    live in Z_R with R larger than any possible sum).
    """
    if n < 3:
        raise ValueError(
            f"secure aggregation needs at least 3 sites, got {n}: with 2 each site could subtract "
            "its own input from the sum. Sample more sites or use plain aggregation."
        )
    k = (
        cfg.num_neighbours
        if cfg.num_neighbours is not None
        else min(n - 1, 2 * math.ceil(math.log2(n)))
    )
    if not 2 <= k <= n - 1:
        raise ValueError(f"num_neighbours must be in [2, n-1] = [2, {n - 1}], got {k}")
    if k < n - 1 and k % 2:
        raise ValueError(f"num_neighbours must be even (Harary graph) unless it is n-1, got {k}")
    t = cfg.threshold if cfg.threshold is not None else max(2, k // 2 + 1)
    if not (2 <= t <= k and 2 * t > k):
        raise ValueError(
            f"threshold must satisfy k/2 < t <= k and t >= 2 (k={k}), got {t}; "
            f"use the default {max(2, k // 2 + 1)}."
        )
    m = cfg.min_survivors if cfg.min_survivors is not None else t
    if not 2 <= m <= n:
        raise ValueError(f"min_survivors must be in [2, n={n}], got {m}")
    if cfg.modular_bits is not None:
        b = cfg.modular_bits
        return RoundShape(n, k, t, m, b, container_bits(b), b)
    if cfg.value_bits is None:
        q32 = _max_value_bits(32, n, cfg.max_weight)
        if q32 >= 16:
            return RoundShape(n, k, t, m, min(q32, MAX_VALUE_BITS_AUTO), 32)
        q64 = _max_value_bits(64, n, cfg.max_weight)
        return RoundShape(n, k, t, m, min(q64, 32), 64)
    for b in WORD_BITS:
        if cfg.value_bits <= _max_value_bits(b, n, cfg.max_weight):
            return RoundShape(n, k, t, m, cfg.value_bits, b)
    raise ValueError(
        f"value_bits={cfg.value_bits} with n={n} and max_weight={cfg.max_weight} overflows 64-bit "
        "words; lower value_bits or max_weight."
    )
