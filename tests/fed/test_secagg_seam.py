"""The aggregator registry and the SecAgg seam: labels, bounds, layouts, mods, rejections."""

from __future__ import annotations

import logging

import pytest
from flwr.client.mod import secaggplus_mod

from ssl_fed.config import ConfigError, load_config
from ssl_fed.fed import secagg as seam
from ssl_fed.fed.aggregators import aggregator_class, build_aggregator, names, register_aggregator
from ssl_fed.fed.aggregators.secagg import SecAggAggregator
from ssl_fed.fed.secagg_mod import secagg_mod
from ssl_fed.secagg import PROTOCOL_VERSION


@pytest.mark.parametrize(
    "name, label, layout, mods",
    [
        ("secagg", "ssl-fed-secagg+", "message", [secagg_mod]),
        ("flower-secaggplus", "flwr-secaggplus", "legacy", [secaggplus_mod]),
        ("plain", "off", "message", []),
    ],
)
def test_each_option_has_its_label_layout_and_mod(
    name: str, label: str, layout: str, mods: list
) -> None:
    # Execute
    agg = build_aggregator(load_config([f"aggregation={name}"]))
    # Assert
    got = (agg.name, agg.label, agg.reply_layout, [m.__name__ for m in agg.client_mods()])
    assert got == (name, label, layout, [m.__name__ for m in mods])


def test_quantization_bounds_are_the_stated_ones() -> None:
    # Prepare: 10 sites, weight 1 -> 24 value bits fit a 32-bit word
    def bound(overrides: list[str]) -> float:
        return build_aggregator(load_config(overrides)).quantization_bound()

    # Execute / Assert
    assert bound([]) == pytest.approx(0.5 / (2**24 - 1))
    assert bound(["aggregation=flower-secaggplus"]) == pytest.approx(0.5 / 2**22)
    assert bound(["aggregation=plain"]) == 0.0


def test_the_registry_names_every_option_and_refuses_an_unknown_one() -> None:
    # Execute
    with pytest.raises(ConfigError) as err:
        aggregator_class("secagg-typo")
    # Assert
    assert names() == ("flower-secaggplus", "plain", "secagg")
    assert str(err.value) == (
        "aggregation.name='secagg-typo' is invalid: use one of flower-secaggplus, plain, secagg"
    )


def test_a_duplicate_registration_is_refused() -> None:
    # Prepare
    class Again(SecAggAggregator):
        name = "secagg"

    # Execute / Assert
    with pytest.raises(ValueError, match="already registered"):
        register_aggregator(Again)
    assert aggregator_class("secagg") is SecAggAggregator


def test_secagg_checks_its_config_through_the_registry() -> None:
    # Prepare: 2 sites per round cannot run secure aggregation
    cfg = load_config(["aggregation=plain", "sim.num_sites=2"])
    # Execute / Assert: plain accepts it, secagg refuses it with the fix
    aggregator_class("plain").check_config(cfg)
    with pytest.raises(ConfigError, match="at least 3 sites per round"):
        aggregator_class("secagg").check_config(cfg)


def test_secagg_config_uses_weight_one_and_clear_whitelisted_scalars() -> None:
    sc = seam.secagg_config(load_config(["aggregation.timeout=33"]).aggregation)
    assert (sc.max_weight, sc.clip_range, sc.train_timeout) == (1, 0.5, 33.0)
    assert (sc.array_key, sc.weight_key, sc.clear_metrics) == ("arrays", "num-examples", True)


def test_protocol_version_mismatch_is_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: the reason a site's secagg_mod sends back when the versions differ
    reason = (
        "advertise: site replied with error: secagg advertise: protocol version mismatch: this "
        f"side speaks 'ssl-fed-secagg+/0', peer sent {PROTOCOL_VERSION!r}"
    )
    # Execute
    with caplog.at_level(logging.WARNING, logger="ssl_fed.server"):
        seam._log_rejections(3, {7: reason, 8: "collect: site replied with error: boom"})
    # Assert
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "another SecAgg protocol version" in errors[0].getMessage()
    assert PROTOCOL_VERSION in errors[0].getMessage() and "node 7" in errors[0].getMessage()
