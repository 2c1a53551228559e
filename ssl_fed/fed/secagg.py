"""ssl-fed's SecAgg+ on the server: its config, its validation and one round over the grid.

SecAgg+ (Bell, Bonawitz, Gascón, Lepoint, Raykova: "Secure Single-Server Aggregation with
(Poly)Logarithmic Overhead", CCS 2020, arXiv 2002.04156) masks each site's quantized update with
pairwise masks agreed with its neighbours on a sparse random graph, plus a private mask, and
Shamir-shares the mask secrets; the server learns only the sum of the surviving sites' updates. It
hides individual updates; it adds no differential privacy. ``aggregation.name`` picks an
aggregator (:mod:`ssl_fed.fed.aggregators`); this module serves ``secagg``:

- ``secagg`` (default): ssl-fed's own implementation (:mod:`ssl_fed.secagg`) on the Message API:
  full-strength ChaCha20 masks, one :func:`~ssl_fed.fed.secagg_driver.run_secagg_round` per
  round, :func:`~ssl_fed.fed.secagg_mod.secagg_mod` at the site. Neighbours ``k`` and
  threshold ``t`` default to the paper's choice (``k = min(n-1, 2⌈log2 n⌉)``,
  ``t = k//2 + 1``); ``stage_timeout`` bounds the key, share and unmask stages, ``timeout`` the
  masked-input stage (which includes local training), so a dead site cannot stall a round.
  Fewer than 3 willing sites, or too few survivors, skip the round.
- ``flower-secaggplus`` (:mod:`ssl_fed.fed.legacy`): Flower 1.42's stock SecAgg+ on the legacy
  stack, kept for comparison; its masks come from 32-bit seeds, below cryptographic strength
  (issue 5).
- ``plain`` (:mod:`ssl_fed.fed.plain`): no secure aggregation (comparison only); no quantization.

Importing this module does not import Flower (config validation calls
:func:`check_secagg_config`); :func:`aggregate_secure` imports the Message-API driver.

Notes
-----
Quantization bound (per value, against the exact mean of the clipped deltas), weight 1 everywhere.
Both implementations clip every delta value to ``±clipping_range`` (0.5). Measured on digits
(default encoder, 2 local epochs, 24–300 images per site) the largest |delta| per round was
0.004–0.02, so 0.5 leaves a 25x margin against clipping.

- ``secagg``: ``q`` value bits (auto: the largest ``q <= 24`` whose sum over ``n`` sites fits a
  32-bit word, i.e. 24 for up to 256 sites with ``max_weight = 1``); error ``<= clip / (2^q - 1)``,
  0.5 / (2^24 - 1) ≈ 3.0e-8 (:func:`ssl_fed.secagg.quantization_bound`).
- ``flower-secaggplus``: ``quantization_range`` levels (2^22); error
  ``<= clipping_range / quantization_range`` ≈ 1.2e-7; the 2^32 modulus holds up to 1024 sites.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from ssl_fed import secagg as ssa
from ssl_fed.config import AggregationConfig, ConfigError, RootConfig
from ssl_fed.fed.layout import AGGREGATION_WEIGHT, ARRAYS, WEIGHT_KEY, RoundOutcome
from ssl_fed.secagg.params import resolve_round

if TYPE_CHECKING:
    from flwr.app import RecordDict
    from flwr.serverapp import Grid

log = logging.getLogger("ssl_fed.server")

MAX_WEIGHT = AGGREGATION_WEIGHT
"""The weight cap equals the uniform site weight, so weights cost no quantization levels."""

MIN_SITES = 3
"""Fewest sites SecAgg runs with: with 2, each site could subtract its own input from the sum."""


def expected_sites(cfg: RootConfig) -> int:
    """Sites sampled in a round when every site is willing (``sites_per_round`` or the fraction)."""
    return cfg.sim.sites_per_round or math.ceil(cfg.sim.fraction * cfg.sim.num_sites)


def secagg_config(cfg: AggregationConfig) -> ssa.SecAggConfig:
    """Translate the ``aggregation`` group into ssl-fed's :class:`~ssl_fed.secagg.SecAggConfig`."""
    return ssa.SecAggConfig(
        clip_range=cfg.clipping_range,
        value_bits=cfg.value_bits,
        max_weight=MAX_WEIGHT,
        num_neighbours=cfg.neighbours,
        threshold=cfg.threshold,
        stage_timeout=cfg.stage_timeout,
        train_timeout=cfg.timeout,
        array_key=ARRAYS,
        weight_key=WEIGHT_KEY,
        clear_metrics=True,
        fixed_weight=MAX_WEIGHT,
    )


def check_secagg_config(cfg: RootConfig) -> None:
    """Raise :class:`ConfigError` unless ``secagg`` can run with the expected number of sites."""
    n = expected_sites(cfg)
    if n < MIN_SITES:
        raise ConfigError(
            f"aggregation=secagg with {n} sites per round is invalid: secure aggregation needs "
            f"at least {MIN_SITES} sites per round; sample more sites, or use aggregation=plain "
            "for a comparison run"
        )
    a = cfg.aggregation
    if a.value_bits is not None and not 2 <= a.value_bits <= 32:
        raise ConfigError(f"aggregation.value_bits={a.value_bits} is invalid: use 2..32 or null")
    try:
        resolve_round(n, secagg_config(a))
    except ValueError as err:
        raise ConfigError(
            f"aggregation.neighbours/threshold ({a.neighbours}, {a.threshold}) are invalid for "
            f"{n} sites per round: {err}"
        ) from None


def quantization_bound(cfg: RootConfig) -> float:
    """Largest per-value error of the ``secagg`` mean (``q`` resolved for the expected sites)."""
    a = cfg.aggregation
    bits = resolve_round(max(MIN_SITES, expected_sites(cfg)), secagg_config(a)).value_bits
    return ssa.quantization_bound(a.clipping_range, bits)


def aggregate_secure(
    grid: Grid, node_ids: list[int], content: RecordDict, cfg: AggregationConfig, rnd: int
) -> RoundOutcome:
    """Run one ssl-fed SecAgg+ round over ``node_ids`` and return the survivors' mean delta.

    A skip (fewer than 3 sites, too few survivors, a secret that cannot be rebuilt) returns an
    outcome without a mean and with the reason; the caller keeps the model unchanged.
    """
    from ssl_fed.fed.secagg_driver import run_secagg_round, spec_from_arrays

    names = list(content.array_records[ARRAYS])
    if len(node_ids) < MIN_SITES:
        reason = f"{len(node_ids)} sites sampled; secure aggregation needs at least {MIN_SITES}"
        return RoundOutcome(None, [], list(node_ids), skipped=reason)
    spec = spec_from_arrays(content.array_records[ARRAYS])
    try:
        res = run_secagg_round(grid, node_ids, content, spec, secagg_config(cfg), group_id=str(rnd))
    except ValueError as err:
        return RoundOutcome(None, [], list(node_ids), skipped=f"invalid SecAgg round: {err}")
    _log_rejections(rnd, res.rejected)
    timings = {k: round(v, 4) for k, v in res.timings.items()}
    if isinstance(res, ssa.Skipped):
        reason = f"SecAgg skipped at stage {res.stage}: {res.reason}"
        return RoundOutcome(None, [], list(node_ids), dict(res.clear), reason, timings)
    mean = [np.asarray(res.arrays[n], np.float32) for n in names]
    dropped = sorted(set(node_ids) - set(res.survivors))
    clear = dict(res.clear)
    return RoundOutcome(mean, list(res.survivors), dropped, clear, None, timings, res.clipped)


def _log_rejections(rnd: int, rejected: dict[int, str]) -> None:
    """Log why sites left the round; a protocol version mismatch gets its own clear error."""
    for node, reason in sorted(rejected.items()):
        if "protocol version mismatch" in reason:
            log.error(
                "round %d: node %d speaks another SecAgg protocol version (server: %s): %s",
                rnd,
                node,
                ssa.PROTOCOL_VERSION,
                reason,
            )
        else:
            log.warning("round %d: node %d left the SecAgg round: %s", rnd, node, reason)
