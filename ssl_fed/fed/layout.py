"""Names of the train records and a round's outcome: the Flower-free half of the message layout.

:mod:`ssl_fed.fed.messages` builds and reads the records (it needs Flower); these names and
:class:`RoundOutcome` are plain data, so the aggregator registry and config validation can use them
without importing Flower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_fed.fed.arrays import NDArray

ARRAYS, CONFIG, METRICS = "arrays", "config", "metrics"
WEIGHT_KEY = "num-examples"

AGGREGATION_WEIGHT = 1
"""Every site's weight: uniform, because weighting by example count would reveal data size."""


@dataclass
class RoundOutcome:
    """What one round's aggregation produced, keyed by Flower node id.

    Attributes
    ----------
    mean : list[NDArray] | None
        The uniform mean of the completed sites' deltas; ``None`` keeps the model unchanged.
    completed, dropped : list[int]
        Nodes whose delta is in the mean; sampled nodes whose delta is not.
    metrics : dict[int, dict[str, float]]
        Whitelisted per-site scalars (mean losses, ε spent, ε remaining) the sites reported.
    skipped : str | None
        Why the round produced no aggregate (too few survivors, ...), else ``None``.
    timings : dict[str, float]
        Seconds per protocol stage (secure aggregation only).
    clipped : int | None
        Coordinates clipped at the SecAgg quantizer, summed over the completed sites (the only
        clip information the server learns); ``None`` when no quantizer ran.
    """

    mean: list[NDArray] | None
    completed: list[int]
    dropped: list[int]
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    clipped: int | None = None
