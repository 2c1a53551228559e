"""The ssl-fed ClientApp: a budget-query handler and a SecAgg+ train handler behind the guard.

Mods, outer to inner, on ``train``: the SecAgg+ mod (from :mod:`ssl_fed.fed.secagg`; absent only
when the site accepts plain aggregation), then the guard (:mod:`ssl_fed.fed.guard`), then the
handler. The guard therefore sees the exact reply before it is quantized and masked, and drops it
(raises) if it carries anything but the declared delta arrays and whitelisted scalars.
The handler reads the legacy ``fitins.*`` layout and replies ``fitres.*`` with weight 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from client import site as st
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import AGGREGATION_WEIGHT, allowed_fit_metrics, make_guard_mod
from ssl_fed.fed.runconfig import from_run_config
from ssl_fed.fed.secagg import client_mods
from ssl_fed.models import build_model
from ssl_fed.tasks import build_task

log = logging.getLogger("ssl_fed.client")

QUERY_RECORD = "budget-query"


def make_client_app(cfg: RootConfig | None = None) -> ClientApp:
    """Build the ClientApp; ``cfg=None`` composes it from the run config (``flwr run``)."""
    cache: dict[str, RootConfig] = {}

    def config_of(context: Context) -> RootConfig:
        if cfg is not None:
            return cfg
        key = repr(sorted(context.run_config.items()))
        if key not in cache:
            cache.clear()
            cache[key] = from_run_config(dict(context.run_config))
        return cache[key]

    facts: dict[str, tuple[list[fa.ArraySpec], frozenset[str]]] = {}

    def declared(context: Context) -> tuple[list[fa.ArraySpec], frozenset[str]]:
        """Return the declared update arrays and whitelisted metrics, from the site's model."""
        c = config_of(context)
        channels = st.site_data(c, st.site_info(c, dict(context.node_config))).channels
        key = f"{c.encoder}|{c.task}|{c.aggregation.share_heads}|{channels}"
        if key not in facts:
            model = build_model(c.encoder, channels)
            task = build_task(model, c.task, c.data.augment, c.data.image_size, channels)
            specs = fa.array_specs(model, c.aggregation.share_heads)
            facts[key] = (specs, allowed_fit_metrics(task.term_names()))
        return facts[key]

    def policy_mod(msg: Message, context: Context, call_next: Callable[..., Message]) -> Message:
        c = config_of(context)
        if c.aggregation.name == "plain" and not _plain_allowed(context):
            raise ConfigError("this site requires secure aggregation; plain rounds are refused")
        mods = client_mods(c.aggregation)
        return mods[0](msg, context, call_next) if mods else call_next(msg, context)

    guard = make_guard_mod(lambda c: declared(c)[0], lambda c: declared(c)[1])
    app = ClientApp()

    @app.query(mods=[guard])
    def query(msg: Message, context: Context) -> Message:
        c = config_of(context)
        info = st.site_info(c, dict(context.node_config))
        q = msg.content.config_records[QUERY_RECORD]
        ok = st.answer_budget_query(c, info, str(q["run-id"]), int(q["round"]))  # type: ignore[arg-type]
        reply = MetricRecord({"can-train": int(ok), "site": info.label})
        return Message(RecordDict({"budget": reply}), reply_to=msg)

    @app.train(mods=[policy_mod, guard])
    def train(msg: Message, context: Context) -> Message:
        c = config_of(context)
        info = st.site_info(c, dict(context.node_config))
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        received = parameters_to_ndarrays(fitins.parameters)
        delta, scalars = st.train_round(
            c,
            info,
            received,
            context,
            str(fitins.config["run-id"]),
            int(fitins.config["round"]),  # type: ignore[arg-type]
        )
        fitres = FitRes(
            Status(Code.OK, ""), ndarrays_to_parameters(delta), AGGREGATION_WEIGHT, dict(scalars)
        )
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    return app


def _plain_allowed(context: Context) -> bool:
    """Plain rounds only in simulation, or where the site opted in (``allow-plain=true``)."""
    node: dict[str, Any] = dict(context.node_config)
    return "partition-id" in node or bool(node.get("allow-plain", False))


app = make_client_app()
"""The ClientApp ``flwr run`` loads (``[tool.flwr.app.components] clientapp``)."""
