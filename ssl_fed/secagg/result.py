"""Outcomes of a secure-aggregation round: an aggregate, or a clean skip with the reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass
class AggregateResult:
    """The unmasked weighted mean and what the server learned along the way.

    Attributes
    ----------
    arrays : dict[str, NDArray[np.float64]]
        Weighted mean ``Σ w_i x_i / Σ w_i`` over ``survivors``, in the spec's names and shapes.
    total_weight : int
        ``Σ w_i`` over the survivors (the only other value revealed).
    survivors : list[int]
        Sites whose masked input entered the sum.
    dropped : list[int]
        Sites that shared keys but whose input is not in the sum (timeout or rejected).
    rejected : dict[int, str]
        Sites whose messages broke the protocol or that answered a stage with an error (e.g. a
        protocol version mismatch), with the reason (a subset of the non-survivors).
    error_bound : float
        Per-coordinate bound on the quantization error vs the exact weighted mean of clipped inputs.
    timings : dict[str, float]
        Seconds per stage (server wall time) and per cost category (server and summed site time).
    clear : dict[int, dict[str, float]]
        Per survivor, the scalars it sent in the clear (only with ``SecAggConfig.clear_metrics``).
    clipped : int
        Coordinates clipped at the quantizer, summed over the survivors (each site's count travels
        masked, so only this total is revealed).
    words : NDArray[np.uint64] | None
        Modular mode only (``SecAggConfig.modular_bits``): the unmasked sum of the value words
        modulo ``2^modular_bits``; ``arrays`` is then empty and the caller decodes.
    """

    arrays: dict[str, NDArray[np.float64]]
    total_weight: int
    survivors: list[int]
    dropped: list[int]
    rejected: dict[int, str]
    error_bound: float
    timings: dict[str, float] = field(default_factory=dict)
    clear: dict[int, dict[str, float]] = field(default_factory=dict)
    clipped: int = 0
    words: NDArray[np.uint64] | None = None


@dataclass
class Skipped:
    """The round produced no aggregate; the caller keeps the model unchanged and counts the skip.

    ``stage`` is the protocol stage that ended the round, or ``"check"`` when the unmasked sum
    failed the server's consistency checks (:func:`ssl_fed.secagg.quantize.check_sum`).

    ``survivors`` are the sites still in the round when it stopped; ``clear`` holds the clear
    scalars (``SecAggConfig.clear_metrics``) of those that reached the masked-input stage.
    """

    reason: str
    stage: str
    survivors: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    clear: dict[int, dict[str, float]] = field(default_factory=dict)
