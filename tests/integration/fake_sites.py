"""A ClientApp with deterministic fake deltas, to test aggregation without training noise."""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import allowed_fit_metrics, make_guard_mod
from ssl_fed.fed.secagg import client_mods
from ssl_fed.models import build_model


def fake_delta(specs: list[fa.ArraySpec], site: int) -> list[fa.NDArray]:
    """Site ``site``'s update: seeded values of typical delta size (|x| <= 0.02)."""
    rng = np.random.default_rng(1000 + site)
    return [rng.uniform(-0.02, 0.02, s.shape).astype(np.float32) for s in specs]


def make_fake_app(cfg: RootConfig, drop: set[int], poison: set[int], guard: bool) -> ClientApp:
    """Sites in ``drop`` fail while computing their update (SecAgg+ stage 2); sites in
    ``poison`` send NaN. ``guard=False`` leaves the site guard out (a broken or hostile site).
    """
    specs = fa.array_specs(build_model(cfg.encoder, 1), cfg.aggregation.share_heads)
    mods = [*client_mods(cfg.aggregation)]
    if guard:
        mods.append(make_guard_mod(lambda c: specs, lambda c: allowed_fit_metrics(["rotation"])))
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
        if site in drop:
            raise RuntimeError(f"site {site} dies while computing its update")
        delta = fake_delta(specs, site)
        if site in poison:
            delta[0][...] = np.nan
        fitres = FitRes(
            Status(Code.OK, ""), ndarrays_to_parameters(delta), 1, {"loss-rotation": 1.0}
        )
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    return app
