"""The ssl-fed ClientApp: a budget-query handler and a SecAgg train handler behind the guard.

Mods, outer to inner, on ``train``: the SecAgg mod (from :mod:`ssl_fed.fed.secagg`: ssl-fed's
``secagg_mod`` by default, Flower's ``secaggplus_mod`` for ``aggregation=flower-secaggplus``;
absent only when the site accepts plain aggregation), then the guard (:mod:`ssl_fed.fed.guard`),
then the handler. The guard therefore sees the exact reply before it is quantized and masked, and
drops it (raises) if it carries anything but the declared delta arrays and whitelisted scalars.
The handler reads and replies in the run's layout (:mod:`ssl_fed.fed.messages`): ``arrays`` +
``config`` in, ``arrays`` + ``metrics`` (weight 1, whitelisted scalars) out; or the legacy
``fitins.*`` / ``fitres.*`` for Flower's stock SecAgg+.

Deployed sites started with ``ssl-fed site start`` set ``warm-worker=true`` in their node config:
flwr 1.42 runs every message in a fresh process, so this module imports only flwr and numpy at
the top, and the heavy steps (config, budget query, declared update, training) go to the site's
long-lived worker (:mod:`ssl_fed.deploy.worker`). Without it (simulation) they run in-process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import make_guard_mod
from ssl_fed.fed.messages import read_train_request, train_reply
from ssl_fed.fed.secagg import client_mods, reply_layout

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
            if _warm(context):
                cache[key] = _remote(context, "config")
            else:
                from ssl_fed.fed.runconfig import from_run_config

                cache[key] = from_run_config(dict(context.run_config))
        return cache[key]

    facts: dict[str, tuple[list[fa.ArraySpec], frozenset[str]]] = {}

    def declared(context: Context) -> tuple[list[fa.ArraySpec], frozenset[str]]:
        """Return the declared update arrays and whitelisted metrics, from the site's model."""
        if _warm(context):
            if "warm" not in facts:
                facts["warm"] = _remote(context, "declared")
            return facts["warm"]
        from client import site as st

        c = config_of(context)
        channels = st.site_data(c, st.site_info(c, dict(context.node_config))).channels
        key = f"{c.encoder}|{c.task}|{c.aggregation.share_heads}|{channels}"
        if key not in facts:
            facts[key] = st.declared_update(c, channels)
        return facts[key]

    def policy_mod(msg: Message, context: Context, call_next: Callable[..., Message]) -> Message:
        c = config_of(context)
        if c.aggregation.name == "plain" and not _plain_allowed(context):
            raise ConfigError("this site requires secure aggregation; plain rounds are refused")
        mods = client_mods(c.aggregation)
        return mods[0](msg, context, call_next) if mods else call_next(msg, context)

    def layout(context: Context) -> str:
        return reply_layout(config_of(context).aggregation)

    guard = make_guard_mod(lambda c: declared(c)[0], lambda c: declared(c)[1], layout)
    app = ClientApp()

    @app.query(mods=[guard])
    def query(msg: Message, context: Context) -> Message:
        q = msg.content.config_records[QUERY_RECORD]
        run_id, rnd = str(q["run-id"]), int(q["round"])  # type: ignore[arg-type]
        if _warm(context):
            ok, label = _remote(context, "query", run_id, rnd)
        else:
            from client import site as st

            c = config_of(context)
            info = st.site_info(c, dict(context.node_config))
            ok, label = st.answer_budget_query(c, info, run_id, rnd), info.label
        reply = MetricRecord({"can-train": int(ok), "site": label})
        return Message(RecordDict({"budget": reply}), reply_to=msg)

    @app.train(mods=[policy_mod, guard])
    def train(msg: Message, context: Context) -> Message:
        received, names, run_id, rnd = read_train_request(msg.content, layout(context))
        if _warm(context):
            delta, scalars = _remote(context, "train", received, run_id, rnd)
        else:
            from client import site as st

            c = config_of(context)
            info = st.site_info(c, dict(context.node_config))
            delta, scalars = st.train_round(c, info, received, context, run_id, rnd)
        return Message(train_reply(delta, names, dict(scalars), layout(context)), reply_to=msg)

    return app


def _warm(context: Context) -> bool:
    """Whether this site forwards heavy steps to its warm worker (``ssl-fed site start``)."""
    return bool(context.node_config.get("warm-worker", False))


def _remote(context: Context, kind: str, *args: Any) -> Any:
    """Run one request on the site's warm worker (see :mod:`ssl_fed.deploy.worker`)."""
    from ssl_fed.deploy.worker import call_worker

    state_dir = str(context.node_config["state-dir"])
    return call_worker(state_dir, kind, dict(context.run_config), *args)


def _plain_allowed(context: Context) -> bool:
    """Plain rounds only in simulation, or where the site opted in (``allow-plain=true``)."""
    node: dict[str, Any] = dict(context.node_config)
    return "partition-id" in node or bool(node.get("allow-plain", False))


app = make_client_app()
"""The ClientApp ``flwr run`` loads (``[tool.flwr.app.components] clientapp``)."""
