"""The secure-aggregation seam: labels, bounds, layouts, mods, and clear logs of rejections."""

from __future__ import annotations

import logging

import pytest
from flwr.client.mod import secaggplus_mod

from ssl_fed.config import load_config
from ssl_fed.fed import secagg as seam
from ssl_fed.secagg import PROTOCOL_VERSION, secagg_mod


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
    a = load_config([f"aggregation={name}"]).aggregation
    got = (seam.secure_label(a), seam.reply_layout(a), [m.__name__ for m in seam.client_mods(a)])
    assert got == (label, layout, [m.__name__ for m in mods])


def test_quantization_bounds_are_the_stated_ones() -> None:
    # Prepare: 10 sites, weight 1 -> 24 value bits fit a 32-bit word
    assert seam.quantization_bound(load_config()) == pytest.approx(0.5 / (2**24 - 1))
    flower = load_config(["aggregation=flower-secaggplus"])
    assert seam.quantization_bound(flower) == pytest.approx(0.5 / 2**22)
    assert seam.quantization_bound(load_config(["aggregation=plain"])) == 0.0


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
