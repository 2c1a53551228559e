"""One round at one site: its privacy engine, its budget answer, one local training, what leaves.

Everything here runs at the site. The only things handed back for sending are the update arrays
(deltas of the federated weights) and the privacy engine's public scalars; the ClientApp's guard
checks them again before SecAgg masks them.

The training losses are unclipped, un-noised means over private images, so they never leave:
each round appends them to ``<state-dir>/site_metrics.jsonl`` (:data:`SITE_METRICS_FILE`), the
site's own record. ε and ε-remaining leave only when the site's sampling rate comes from a public
size (:func:`~ssl_fed.site.node.declared_size`, node config ``public-size``), because q = B/n
with the exact n makes them functions of n
(:meth:`~ssl_fed.privacy.engine.PrivacyEngine.public_scalars`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from ssl_fed.config import RootConfig, epsilon_budget
from ssl_fed.data import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.models import SSLModel, build_model
from ssl_fed.privacy.distributed_engine import SkellamEngine
from ssl_fed.privacy.engine import PrivacyEngine, build_engine, engine_class
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.policy import SitePolicy
from ssl_fed.site import node
from ssl_fed.site.evaluation import site_evaluation
from ssl_fed.site.node import SiteInfo
from ssl_fed.tasks import build_task
from ssl_fed.train.local import schedule_for, train_local
from ssl_fed.train.sampling import privacy_units

log = logging.getLogger("ssl_fed.client")

SITE_METRICS_FILE = "site_metrics.jsonl"
"""Per-round site-local record (losses, steps) under the site's state directory."""


@dataclass(frozen=True)
class SiteRound:
    """What one round produced: the update and scalars to send, and the heads kept at the site."""

    delta: list[fa.NDArray]
    scalars: dict[str, float]
    heads: dict[str, torch.Tensor] | None
    """The local heads' weights for the next round (``None`` when the heads are federated)."""


def declared_update(
    cfg: RootConfig, channels: int, policy: SitePolicy | None = None
) -> tuple[list[fa.ArraySpec], frozenset[str]]:
    """Return the update arrays and whitelisted metric names a site may send (for the guard).

    ``drift-alarm`` is on the list only when the site's own ``policy`` says ``dp-alarm``.
    """
    from ssl_fed.fed.guard import allowed_fit_metrics
    from ssl_fed.monitor.site import drift_alarm_allowed

    names = allowed_fit_metrics(drift_alarm=drift_alarm_allowed(policy))
    if cfg.privacy.enabled and cfg.privacy.noise == "distributed":
        from ssl_fed.site.ddp import ddp_spec

        return [ddp_spec(cfg, channels)], names
    model = build_model(cfg.encoder, channels)
    return fa.array_specs(model, cfg.aggregation.share_heads), names


def _open_ledger(cfg: RootConfig, info: SiteInfo) -> PrivacyLedger:
    pr = cfg.privacy
    key_dir = info.key_dir if info.key_dir is not None else pr.key_dir
    return PrivacyLedger(
        info.state_dir,
        budget=epsilon_budget(pr),
        delta=pr.delta,
        accountant=pr.accountant,
        key_dir=key_dir,
        privacy_unit=pr.unit,
    )


def site_ledger(cfg: RootConfig, info: SiteInfo) -> PrivacyLedger | None:
    """Open the site's own ledger (``None`` when its privacy engine charges none)."""
    cfg = node.site_config(cfg, info)
    return engine_class(cfg).open_ledger(partial(_open_ledger, cfg, info))


def site_engine(cfg: RootConfig, info: SiteInfo, data: ImageDataset, run_id: str) -> PrivacyEngine:
    """Build the site's privacy engine for one round of ``run_id`` (``cfg``: the site's view)."""
    n = privacy_units(data, cfg)  # images, or persons: a private number (never sent)
    ledger = partial(_open_ledger, cfg, info)
    engine = build_engine(cfg, ledger, schedule_for(cfg, n), n=n, run_id=run_id)
    if isinstance(engine, SkellamEngine):  # distributed noise: public constants need the model
        engine.bind(data.channels)
    return engine


def answer_budget_query(cfg: RootConfig, info: SiteInfo, run_id: str, round: int) -> bool:
    """Whether this site affords ``round`` (the engine's decision, logged at the site)."""
    cfg = node.site_config(cfg, info)
    decision = site_engine(cfg, info, node.site_data(cfg, info), run_id).decide(round)
    if not decision.ok:
        log.warning("declining round %d: %s", round, decision.reason)
    return decision.ok


def local_heads(model: SSLModel) -> dict[str, torch.Tensor]:
    """Return every head's weights as ``<head>.<param>`` tensors (kept at the site).

    Iterates ``model.heads`` (:func:`ssl_fed.fed.arrays.head_state`), so a newly registered
    task's head is kept across rounds too.
    """
    return {k: v.clone() for k, v in fa.head_state(model).items()}


def load_local_heads(model: SSLModel, kept: dict[str, torch.Tensor]) -> None:
    """Load heads saved by :func:`local_heads` into ``model``."""
    fa.load_head_state(model, kept)


def train_site_round(
    cfg: RootConfig,
    info: SiteInfo,
    received: list[fa.NDArray],
    heads: dict[str, torch.Tensor] | None,
    run_id: str,
    round: int,
    policy: SitePolicy | None = None,
    audit: Callable[[PrivacyEngine], None] | None = None,
) -> SiteRound:
    """Train one round from the received global weights (and the site's kept ``heads``).

    ``audit`` is the privacy audit's seam (:mod:`ssl_fed.audit.simulation`): called with the
    round's engine before training, it adds canary units; ``None`` in training.

    Under DP the engine draws Poisson sampling and noise from OS entropy (never from the public
    ``train.seed``), so an observer cannot regenerate the noise. After training, the drift
    monitor runs if the site's ``policy`` asks for it (:mod:`ssl_fed.monitor.site`); a
    simulated site's images carry the drift of ``sim.drift``
    (:func:`~ssl_fed.monitor.inject.drifted_dataset`).
    """
    cfg = node.site_config(cfg, info)
    data = node.site_data(cfg, info)
    if info.partition_id is not None and cfg.sim.drift:
        from ssl_fed.monitor.inject import drifted_dataset

        data = drifted_dataset(cfg, info.label, data, round)
    engine = site_engine(cfg, info, data, run_id)
    if audit is not None:
        audit(engine)
    if engine.already_charged(round):
        raise RuntimeError(f"round {round} of run {run_id} was already charged here")
    if isinstance(engine, SkellamEngine):
        from ssl_fed.site.ddp import ddp_round

        delta = [ddp_round(engine, cfg, data, received, round)]  # charged before computed
        held = site_evaluation(cfg, info, received)
        alarm, drift = _drift(cfg, info, policy, data, received, run_id, round)
        record_round(info, run_id, round, engine.last_losses or {}, 1, drift, held)
        return SiteRound(delta, engine.public_scalars() | alarm, None)
    share = cfg.aggregation.share_heads
    model = build_model(cfg.encoder, data.channels, seed=cfg.train.seed)
    fa.load_arrays(model, received, share)
    if not share and heads is not None:
        load_local_heads(model, heads)
    task = build_task(model, cfg.task, cfg.data.augment, data.image_size, data.channels)
    local = replace(cfg, train=replace(cfg.train, progress=False))
    result = train_local(task, data, local, run_id=run_id, round=round, engine=engine)
    new = fa.state_to_arrays(fa.federated_state(model, share))
    delta = fa.subtract_arrays(new, [np.asarray(a, np.float32) for a in received])
    biggest = fa.max_abs(delta)
    if biggest > cfg.aggregation.clipping_range:
        log.warning(
            "largest |delta| %.4g exceeds aggregation.clipping_range %.4g: SecAgg+ clips it",
            biggest,
            cfg.aggregation.clipping_range,
        )
    held_out = site_evaluation(cfg, info, received)  # stays in site_metrics.jsonl
    scalars = engine.public_scalars()
    alarm, drift = _drift(cfg, info, policy, data, received, run_id, round)
    record_round(info, run_id, round, result.losses, result.steps, drift, held_out)
    scalars |= alarm
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return SiteRound(delta, scalars, None if share else local_heads(model))


def _drift(
    cfg: RootConfig,
    info: SiteInfo,
    policy: SitePolicy | None,
    data: ImageDataset,
    received: list[fa.NDArray],
    run_id: str,
    round: int,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Run the site's drift monitor (:func:`ssl_fed.monitor.site.site_drift`) for this round."""
    from ssl_fed.monitor.site import site_drift

    def encoder_state() -> dict[str, torch.Tensor]:
        model = build_model(cfg.encoder, data.channels)
        fa.load_arrays(model, received, cfg.aggregation.share_heads)
        return model.encoder.state_dict()

    ledger = partial(_open_ledger, cfg, info)
    return site_drift(cfg, info.state_dir, policy, data, encoder_state, ledger, run_id, round)


def record_round(
    info: SiteInfo,
    run_id: str,
    round: int,
    losses: dict[str, float],
    steps: int,
    drift: dict[str, Any] | None = None,
    held_out: dict[str, object] | None = None,
) -> None:
    """Append the round's losses (drift reading, hold-out scores) to ``site_metrics.jsonl``.

    Never sent: the file stays in the site's state directory.
    """
    info.state_dir.mkdir(parents=True, exist_ok=True)
    line: dict[str, Any] = {"run_id": run_id, "round": round, "steps": steps, "losses": losses}
    if drift is not None:
        line["drift"] = drift
    if held_out is not None:
        line["site_eval"] = held_out
    with (info.state_dir / SITE_METRICS_FILE).open("a") as f:
        f.write(json.dumps(line) + "\n")
