"""The privacy engine: everything a training needs to know about privacy, behind one object.

In the spirit of Opacus' ``PrivacyEngine.make_private``: a site builds one engine per training
from the privacy config, its ledger and its data size (:func:`build_engine`); the engine

* calibrates σ once, for the run's planned trainings (:meth:`PrivacyEngine.noise_multiplier`;
  the planned count is ``train.max_rounds``, which :func:`plan_federated_trainings` sets to
  ``sim.rounds`` for every federated site: the one rule, in one place),
* answers "can I train this round?" with a reason (:meth:`PrivacyEngine.decide`),
* checks the setup, records the ledger entry *before* training and returns the gradient step
  (:meth:`PrivacyEngine.make_private`),
* says what may be reported: ε, the public scalars a site sends, the metrics.json fields.

``privacy=off`` is the same interface with a no-op implementation (:class:`NoPrivacyEngine`), so
training code never branches on ``privacy.enabled``; :func:`mechanism_name` is the one place that
reads it.

Adding a mechanism is one class: a :class:`~ssl_fed.privacy.mechanism.PrivacyEngine` subclass
with a ``name``, one line in :data:`ENGINES`, and its config value mapped to that name in
:func:`mechanism_name`. Distributed noise under SecAgg (``privacy.noise=distributed``) is
:class:`~ssl_fed.privacy.distributed_engine.SkellamEngine`: a :class:`DPSGDEngine` whose round is
one DP-FedSGD contribution (clipped per-unit gradients, rounded, plus a Skellam share) charged to
the ledger as a Skellam entry; it inherits the ledger, the "already charged" check and the
reporting.

Notes
-----
Guarantee: whatever the mechanism, a training's ledger entry is written before its first step
(:meth:`~ssl_fed.privacy.mechanism.PrivacyEngine.make_private`), and σ is calibrated once per
run against ``min(target_epsilon, epsilon_budget)`` for ``train.max_rounds`` trainings
(:class:`DPSGDEngine`). :class:`NoPrivacyEngine` gives no guarantee and records nothing.
"""

from __future__ import annotations

from dataclasses import replace

from ssl_fed.config import RootConfig
from ssl_fed.privacy.distributed_engine import SkellamEngine
from ssl_fed.privacy.local_dp import DPSGDEngine, NoPrivacyEngine
from ssl_fed.privacy.mechanism import Decision, LedgerSource, PrivacyEngine
from ssl_fed.privacy.schedule import Schedule

__all__ = [
    "ENGINES",
    "DPSGDEngine",
    "Decision",
    "LedgerSource",
    "NoPrivacyEngine",
    "PrivacyEngine",
    "build_engine",
    "engine_class",
    "mechanism_name",
    "plan_federated_trainings",
]

ENGINES: dict[str, type[PrivacyEngine]] = {
    NoPrivacyEngine.name: NoPrivacyEngine,
    DPSGDEngine.name: DPSGDEngine,
    SkellamEngine.name: SkellamEngine,
}
"""The registered mechanisms, by name (a new mechanism adds one line here)."""


def mechanism_name(cfg: RootConfig) -> str:
    """Return the mechanism ``cfg`` asks for (the one reading of ``privacy.enabled``)."""
    if not cfg.privacy.enabled:
        return "off"
    return "skellam" if cfg.privacy.noise == "distributed" else "dpsgd"


def engine_class(cfg: RootConfig) -> type[PrivacyEngine]:
    """Return the mechanism class ``cfg`` selects."""
    name = mechanism_name(cfg)
    if name not in ENGINES:
        raise ValueError(f"unknown privacy mechanism {name!r}; valid: {sorted(ENGINES)}")
    return ENGINES[name]


def build_engine(
    cfg: RootConfig, ledger: LedgerSource, schedule: Schedule, *, n: int, run_id: str
) -> PrivacyEngine:
    """Build the engine of one training on ``n`` images with the public ``schedule``."""
    cls = engine_class(cfg)
    return cls(cfg, schedule, n=n, run_id=run_id, ledger=cls.open_ledger(ledger))


def plan_federated_trainings(cfg: RootConfig) -> RootConfig:
    """Return ``cfg`` with σ planned for every round of the federation.

    A site may join every round and gets no credit for the server's client sampling (DESIGN §1),
    so ``train.max_rounds = sim.rounds`` keeps each site's ε within its target over the whole
    run. Every federated site applies this (:func:`ssl_fed.site.node.site_config`), whichever
    entry point composed the config (``ssl-fed simulate`` or ``flwr run``).
    """
    return replace(cfg, train=replace(cfg.train, max_rounds=cfg.sim.rounds))
