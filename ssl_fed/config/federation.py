"""Validation of the ``sim`` and ``aggregation`` groups (the federation layer)."""

from __future__ import annotations

from ssl_fed.config.errors import require, require_finite_positive, require_registered
from ssl_fed.config.schema import AggregationConfig, RootConfig, SimConfig

"""Valid ``aggregation.name`` values; the first is the default.

A tuple until the aggregator registry (issue 12, item 3) exists; then ``aggregation.name`` is
checked against that registry like ``task.name`` is against the task registry.
"""


def validate_sim(s: SimConfig) -> None:
    """Check ``sim.*`` (a simulated federation)."""
    require(s.num_sites >= 1, "sim.num_sites", s.num_sites, "use at least 1 site")
    require(s.rounds >= 1, "sim.rounds", s.rounds, "use at least 1 round")
    require(0 < s.fraction <= 1, "sim.fraction", s.fraction, "use 0 < fraction <= 1")
    require(
        s.sites_per_round is None or 1 <= s.sites_per_round <= s.num_sites,
        "sim.sites_per_round",
        s.sites_per_round,
        f"use 1..sim.num_sites ({s.num_sites}) or null (= fraction x num_sites)",
    )
    require_finite_positive(s.client_cpus, "sim.client_cpus", "use > 0 CPUs per site")
    require(
        s.halt_after_round is None or s.halt_after_round >= 1,
        "sim.halt_after_round",
        s.halt_after_round,
        "use a round >= 1 or null",
    )
    require(s.on_drift == "alert", "sim.on_drift", s.on_drift, "use alert (adapt: not built yet)")
    from ssl_fed.monitor.inject import parse_drift  # late: inject imports the config
    from ssl_fed.monitor.release import RELEASES

    require(s.drift_release in RELEASES, "sim.drift_release", s.drift_release, f"use {RELEASES}")
    require_finite_positive(s.drift_alarm_epsilon, "sim.drift_alarm_epsilon", "use ε > 0")

    parse_drift(s.drift, s.num_sites, s.rounds)
    from ssl_fed.attack import parse_attacks  # late: ssl_fed.attack imports the config

    parse_attacks(list(s.attack), s.num_sites)


def validate_aggregation(a: AggregationConfig) -> None:
    """Check ``aggregation.*`` (the values every aggregator reads or may read)."""
    from ssl_fed.fed.aggregators import names  # imports the schema: at call time, no cycle

    require_registered(a.name, "aggregation.name", names())
    require(a.num_shares >= 3, "aggregation.num_shares", a.num_shares, "use >= 3")
    require(
        2 <= a.reconstruction_threshold < a.num_shares,
        "aggregation.reconstruction_threshold",
        a.reconstruction_threshold,
        f"use 2 <= threshold < num_shares ({a.num_shares})",
    )
    require_finite_positive(a.clipping_range, "aggregation.clipping_range", "use > 0")
    require(
        2 <= a.quantization_range <= 2**24,
        "aggregation.quantization_range",
        a.quantization_range,
        "use 2..2^24 levels (the 2^32 modulus must hold the sum of all sites)",
    )
    require_finite_positive(a.timeout, "aggregation.timeout", "use a timeout in seconds > 0")
    require_finite_positive(a.query_timeout, "aggregation.query_timeout", "use > 0 s")
    require_finite_positive(a.stage_timeout, "aggregation.stage_timeout", "use > 0 s")


def validate_federation(cfg: RootConfig) -> None:
    """Check the ``sim`` and ``aggregation`` groups (federation layer) before anything starts."""
    validate_sim(cfg.sim)
    validate_aggregation(cfg.aggregation)
    from ssl_fed.fed.aggregators import aggregator_class

    aggregator_class(cfg.aggregation.name).check_config(cfg)
    if cfg.privacy.noise == "distributed":
        from ssl_fed.privacy.distributed.checks import check_distributed

        check_distributed(cfg)
