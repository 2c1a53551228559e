"""Bad federation settings fail with a ConfigError before anything starts."""

from __future__ import annotations

import pytest

from ssl_fed.config import ConfigError, load_config


@pytest.mark.parametrize(
    "override, field",
    [
        ("sim.num_sites=0", "sim.num_sites"),
        ("sim.rounds=0", "sim.rounds"),
        ("sim.fraction=0", "sim.fraction"),
        ("sim.sites_per_round=11", "sim.sites_per_round"),
        ("aggregation.reconstruction_threshold=3", "aggregation.reconstruction_threshold"),
        ("aggregation.num_shares=2", "aggregation.num_shares"),
        ("aggregation.clipping_range=0", "aggregation.clipping_range"),
        ("aggregation.timeout=-1", "aggregation.timeout"),
        ("aggregation.name=fedprox", "aggregation.name"),
        ("aggregation.name=secaggplus", "aggregation.name"),
        ("aggregation.threshold=1", "aggregation.neighbours/threshold"),
        ("aggregation.neighbours=3", "aggregation.neighbours/threshold"),
        ("aggregation.stage_timeout=0", "aggregation.stage_timeout"),
        ("aggregation.value_bits=40", "aggregation.value_bits"),
        ("sim.num_sites=2", "aggregation=secagg"),
        ("privacy.target_epsilon=-1", "privacy.target_epsilon"),
        ("eval.every=0", "eval.every"),
    ],
)
def test_bad_value_names_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config([override])


def test_defaults_are_the_main_job() -> None:
    cfg = load_config()
    assert (cfg.sim.num_sites, cfg.partition.kind, cfg.partition.alpha) == (10, "dirichlet", 0.5)
    assert (cfg.task.name, cfg.privacy.target_epsilon, cfg.privacy.delta) == ("joint", 8.0, 1e-5)
    assert cfg.aggregation.name == "secagg"
    assert load_config(["aggregation=plain"]).aggregation.name == "plain"
    assert load_config(["aggregation=flower-secaggplus"]).aggregation.name == "flower-secaggplus"
    assert load_config(["sim.num_sites=2", "aggregation=plain"]).sim.num_sites == 2
