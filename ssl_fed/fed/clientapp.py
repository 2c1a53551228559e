"""The ssl-fed ClientApp: a budget-query handler and a SecAgg train handler behind the guard.

Mods, outer to inner, on ``train``: the policy mod, then the aggregator's mod (from
:mod:`ssl_fed.fed.aggregators`: ssl-fed's ``secagg_mod`` by default, Flower's ``secaggplus_mod``
for ``aggregation=flower-secaggplus``; absent for ``plain``), then the guard
(:mod:`ssl_fed.fed.guard`), then the handler. The policy mod compares the run config with the
site's own policy (:mod:`ssl_fed.privacy.policy`, docs/site-policy.md) and answers every TRAIN
message of a refused run with an error reply "declined: policy (codes)" before any SecAgg stage
runs; the budget query answers ``can-train = 0`` with the refusal's code in ``declined``. The
checks that need the ledger (calibrated σ, ε this run already spent; :mod:`ssl_fed.fed.policy`)
run again right before training, so a refused round is never trained, charged or sent. The guard
sits inside the SecAgg mod, so it sees the exact reply before it is quantized and masked, and
drops it (raises) if it carries anything but the declared delta arrays and whitelisted scalars.
The handler reads and replies in the run's layout (:mod:`ssl_fed.fed.messages`): ``arrays`` +
``config`` in, ``arrays`` + ``metrics`` (weight 1, whitelisted scalars) out; or the legacy
``fitins.*`` / ``fitres.*`` for Flower's stock SecAgg+.

Deployed sites started with ``ssl-fed site start`` set ``warm-worker=true`` in their node config:
flwr 1.42 runs every message in a fresh process, so this module imports only flwr and numpy at
the top, and the heavy steps (config, budget query, declared update, training) go to the site's
long-lived worker (:mod:`ssl_fed.deploy.worker`), which holds the operator's policy and applies
it itself. Without it (simulation) they run in-process under :func:`_local_policy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from flwr.app import Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators import aggregator_class, build_aggregator
from ssl_fed.fed.guard import make_guard_mod
from ssl_fed.fed.messages import read_train_request, train_reply
from ssl_fed.secagg.identity import SiteIdentity, derived_identity

log = logging.getLogger("ssl_fed.client")

QUERY_RECORD = "budget-query"
POLICY_ERROR_CODE = 6
"""flwr's ``ErrorCode.MOD_FAILED_PRECONDITION``: the reply a refused train message gets."""


def make_client_app(
    cfg: RootConfig | None = None, *, identity_secret: bytes | None = None
) -> ClientApp:
    """Build the ClientApp; ``cfg=None`` composes it from the run config (``flwr run``).

    ``identity_secret`` (simulation only): the virtual sites' shared secret from which each
    derives its SecAgg signing key and its peers' public keys
    (:func:`~ssl_fed.secagg.identity.derived_identity`); the server never receives it.
    """
    identity_of = None if identity_secret is None else partial(derived_identity, identity_secret)
    config_of = _config_of(cfg)
    declared = _declared_of(config_of)

    def layout(context: Context) -> str:
        return aggregator_class(config_of(context).aggregation.name).reply_layout

    budget = _budget_of(config_of)
    guard = make_guard_mod(lambda c: declared(c)[0], lambda c: declared(c)[1], layout, budget)
    app = ClientApp()

    @app.query(mods=[guard])
    def query(msg: Message, context: Context) -> Message:
        q = msg.content.config_records[QUERY_RECORD]
        run_id, rnd = str(q["run-id"]), int(q["round"])  # type: ignore[arg-type]
        if _warm(context):
            ok, label, code, declared = _remote(context, "query", run_id, rnd)
        else:
            ok, label, code, declared = _local_query(context, config_of(context), run_id, rnd)
        reply = MetricRecord({"can-train": int(ok), "site": label, "declined": code, **declared})
        return Message(RecordDict({"budget": reply}), reply_to=msg)

    @app.train(mods=[_policy_mod(config_of, identity_of), guard])
    def train(msg: Message, context: Context) -> Message:
        received, names, run_id, rnd = read_train_request(msg.content, layout(context))
        if _warm(context):
            delta, scalars = _remote(context, "train", received, run_id, rnd)
        else:
            from ssl_fed.fed import site as st

            c = config_of(context)
            info = st.site_info(c, dict(context.node_config))
            if _local_refusals(context, c, info, run_id):
                from ssl_fed.fed.policy import PolicyDeclinedError

                raise PolicyDeclinedError(f"declined: policy (run {run_id})")
            policy = _local_policy(context, c)
            delta, scalars = st.train_round(c, info, received, context, run_id, rnd, policy)
            if c.sim.attack and info.partition_id is not None:  # poisoning suite (simulation)
                from ssl_fed.attack.hook import submitted_update

                delta = submitted_update(c, info.label, delta, rnd)
        if len(delta) == 1 and delta[0].dtype == np.int64:  # distributed noise (ssl_fed.site.ddp)
            names = ["ddp"]
        return Message(train_reply(delta, names, dict(scalars), layout(context)), reply_to=msg)

    return app


ConfigOf = Callable[[Context], RootConfig]
Declared = tuple[list[fa.ArraySpec], frozenset[str]]


def _config_of(cfg: RootConfig | None) -> ConfigOf:
    """Return the run's config per message: ``cfg``, else composed once per run config."""
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

    return config_of


def _declared_of(config_of: ConfigOf) -> Callable[[Context], Declared]:
    """Return the guard's view of the declared update arrays and whitelisted metrics."""
    facts: dict[str, Declared] = {}

    def declared(context: Context) -> Declared:
        if _warm(context):
            if "warm" not in facts:
                facts["warm"] = _remote(context, "declared")
            return facts["warm"]
        from ssl_fed.fed import site as st

        c = config_of(context)
        channels = st.site_data(c, st.site_info(c, dict(context.node_config))).channels
        key = f"{c.encoder}|{c.task}|{c.aggregation.share_heads}|{channels}|{c.sim}"
        if key not in facts:
            facts[key] = st.declared_update(c, channels, _local_policy(context, c))
        return facts[key]

    return declared


def _policy_mod(
    config_of: ConfigOf, identity_of: Callable[[int], SiteIdentity] | None = None
) -> Callable[..., Message]:
    """Build the mod that refuses, before any SecAgg stage or training, a run the policy refuses.

    Warm sites ask their worker, which holds the operator's policy; in-process sites use
    :func:`_local_policy`. A refused TRAIN message gets an error reply naming only public codes.
    """

    def policy_mod(msg: Message, context: Context, call_next: Callable[..., Message]) -> Message:
        c = config_of(context)
        if _warm(context):
            codes: list[str] = _remote(context, "policy")
        else:
            from ssl_fed.privacy.policy import check_run

            refusals = check_run(c, _local_policy(context, c))
            for r in refusals:
                log.warning("declined: policy: %s", r)
            codes = [r.code for r in refusals]
        if codes:
            reason = f"declined: policy ({', '.join(codes)})"
            return Message(Error(code=POLICY_ERROR_CODE, reason=reason), reply_to=msg)
        mods = build_aggregator(c).client_mods(identity_of or _node_identity(context))
        return mods[0](msg, context, call_next) if mods else call_next(msg, context)

    return policy_mod


def _budget_of(config_of: ConfigOf) -> Callable[[Context], float]:
    """Build the guard's view of the site's own ε budget (the top of the ε scalars it sends)."""
    cached: dict[str, float] = {}

    def budget(context: Context) -> float:
        if _warm(context):
            if "budget" not in cached:
                cached["budget"] = float(_remote(context, "budget"))
            return cached["budget"]
        return float(_local_policy(context, config_of(context)).epsilon_budget)

    return budget


def _node_identity(context: Context) -> Callable[[int], SiteIdentity] | None:
    """Return the deployed site's signing identity (node config ``identity-key``, ``roster-dir``).

    ``ssl-fed site start --roster DIR`` sets both: the site's own node key signs its SecAgg keys
    and survivor set, and only keys in the roster (exchanged between site operators, never sent by
    the server) are trusted. Without a roster the protocol holds against an honest-but-curious
    server only.
    """
    node: dict[str, Any] = dict(context.node_config)
    if "roster-dir" not in node or "identity-key" not in node:
        return None
    from pathlib import Path

    from ssl_fed.secagg.identity import load_identity

    roster = sorted(Path(str(node["roster-dir"])).glob("*.pub"))
    identity = load_identity(Path(str(node["identity-key"])), roster)
    return lambda _node_id: identity


def _warm(context: Context) -> bool:
    """Whether this site forwards heavy steps to its warm worker (``ssl-fed site start``)."""
    return bool(context.node_config.get("warm-worker", False))


def _remote(context: Context, kind: str, *args: Any) -> Any:
    """Run one request on the site's warm worker (see :mod:`ssl_fed.deploy.worker`)."""
    from ssl_fed.deploy.worker import call_worker

    state_dir = str(context.node_config["state-dir"])
    return call_worker(state_dir, kind, dict(context.run_config), *args)


def _local_policy(context: Context, cfg: RootConfig) -> Any:
    """Return the policy of a site whose steps run in-process (no warm worker).

    Simulation (``partition-id`` in the node config): one operator owns every site, so the
    policy is the run's own config (:func:`~ssl_fed.privacy.policy.simulation_policy`). A site
    run by hand with ``flower-supernode``: its node config's ``policy`` file, else the default
    policy with its node config's ``epsilon-budget``. The server can change neither.
    """
    from pathlib import Path

    from ssl_fed.privacy import policy as sp

    node: dict[str, Any] = dict(context.node_config)
    if "partition-id" in node:
        return sp.simulation_policy(cfg)
    if "policy" in node:
        budget = node.get("epsilon-budget")
        return sp.load_policy(Path(str(node["policy"])), None if budget is None else float(budget))
    if "epsilon-budget" not in node:
        raise ConfigError(
            'a deployed site needs a policy: node config policy="FILE" (docs/site-policy.md) '
            "or epsilon-budget=EPS"
        )
    return sp.SitePolicy(epsilon_budget=float(node["epsilon-budget"]))


def _local_refusals(context: Context, cfg: RootConfig, info: Any, run_id: str) -> list[Any]:
    """Policy refusals for one more round of ``run_id`` at an in-process site."""
    from ssl_fed.fed import site as st
    from ssl_fed.fed.policy import site_refusals

    site_cfg = st.site_config(cfg, info)

    def round_inputs() -> tuple[Any, int]:
        return st.site_ledger(site_cfg, info), len(st.site_data(site_cfg, info))

    policy = _local_policy(context, cfg)
    return site_refusals(cfg, site_cfg, policy, round_inputs, run_id)


def _local_query(
    context: Context, cfg: RootConfig, run_id: str, rnd: int
) -> tuple[bool, int, int, dict[str, int]]:
    """Answer the budget query in-process: (can train, site label, declined code, declaration)."""
    from ssl_fed.fed import site as st
    from ssl_fed.privacy.policy import DECLINED_BUDGET, refusal_code
    from ssl_fed.site.declared import declared_scalars

    info = st.site_info(cfg, dict(context.node_config))
    declared = declared_scalars(cfg, info)
    refusals = _local_refusals(context, cfg, info, run_id)
    if refusals:
        return False, info.label, refusal_code(refusals), declared
    ok = bool(st.answer_budget_query(cfg, info, run_id, rnd))
    return ok, info.label, 0 if ok else DECLINED_BUDGET, declared
