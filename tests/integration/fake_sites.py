"""A ClientApp with deterministic fake deltas, to test aggregation without training noise."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators import build_aggregator
from ssl_fed.fed.guard import allowed_fit_metrics, make_guard_mod
from ssl_fed.fed.messages import read_train_request, train_reply
from ssl_fed.models import build_model


def fake_delta(specs: list[fa.ArraySpec], site: int, round: int = 1) -> list[fa.NDArray]:
    """Site ``site``'s update in ``round``: seeded values of typical delta size (|x| <= 0.02)."""
    rng = np.random.default_rng(1000 * round + site)
    return [rng.uniform(-0.02, 0.02, s.shape).astype(np.float32) for s in specs]


def make_fake_app(
    cfg: RootConfig,
    drop: Mapping[int, set[int]],
    poison: Mapping[int, set[int]],
    guard: bool,
) -> ClientApp:
    """Sites in ``drop[round]`` fail while computing their update (the masked-input stage);
    sites in ``poison[round]`` send NaN. ``guard=False`` leaves the site guard out (a broken or
    hostile site). The reply layout and SecAgg mod follow ``cfg.aggregation``.
    """
    specs = fa.array_specs(build_model(cfg.encoder, 1), cfg.aggregation.share_heads)
    aggregator = build_aggregator(cfg)
    layout = aggregator.reply_layout
    mods = [*aggregator.client_mods()]
    if guard:
        allowed = allowed_fit_metrics()
        mods.append(make_guard_mod(lambda c: specs, lambda c: allowed, lambda c: layout))
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        site = int(context.node_config["partition-id"])
        return Message(
            RecordDict({"budget": MetricRecord({"can-train": 1, "site": site})}), reply_to=msg
        )

    @app.train(mods=mods)
    def train(msg: Message, context: Context) -> Message:
        site = int(context.node_config["partition-id"])
        _, names, _, rnd = read_train_request(msg.content, layout)
        if site in drop.get(rnd, set()):
            raise RuntimeError(f"site {site} dies while computing its update")
        delta = fake_delta(specs, site, rnd)
        if site in poison.get(rnd, set()):
            delta[0][...] = np.nan
        scalars = {"epsilon": 0.1 * rnd}
        return Message(train_reply(delta, names, scalars, layout), reply_to=msg)

    return app
