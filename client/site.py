"""One site: where its data and ledger live, what it answers, and one local training.

Everything here runs at the site. The only things handed back to the ClientApp for sending are the
update arrays (deltas of the federated weights) and whitelisted scalars; the ClientApp's guard
checks them again before SecAgg+ masks them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget
from ssl_fed.data import ImageDataset, load_partition, load_splits
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.budget import already_charged, can_train
from ssl_fed.models import build_model
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.tasks import build_task

log = logging.getLogger("ssl_fed.client")

HEADS_RECORD = "local-heads"
_SPLITS: dict[str, Any] = {}


@dataclass(frozen=True)
class SiteInfo:
    """Where a site's data and state live, and its public label."""

    label: int
    state_dir: Path
    data_path: str | None
    partition_id: int | None
    num_partitions: int | None


def site_info(cfg: RootConfig, node_config: dict[str, Any]) -> SiteInfo:
    """Read the site's node config.

    Simulation: ``partition-id``/``num-partitions`` (state dir ``<out>/sites/site_<id>`` unless
    ``state-dir`` is set). Deployment: ``data-path`` and ``state-dir``, optional ``site-id``.
    """
    if "partition-id" in node_config:
        pid, num = int(node_config["partition-id"]), int(node_config["num-partitions"])
        default_dir = Path(cfg.out) / "sites" / f"site_{pid}"
        state = Path(str(node_config.get("state-dir", default_dir)))
        return SiteInfo(pid, state, None, pid, num)
    if "data-path" not in node_config or "state-dir" not in node_config:
        raise ConfigError(
            'a deployed site needs --node-config \'data-path="DIR" state-dir="DIR"\' '
            "(its images, and where its privacy ledger lives)"
        )
    label = int(node_config.get("site-id", -1))
    return SiteInfo(
        label, Path(str(node_config["state-dir"])), str(node_config["data-path"]), None, None
    )


def site_data(cfg: RootConfig, info: SiteInfo) -> ImageDataset:
    """Return the site's training images (cached per process: an actor serves many sites)."""
    data_cfg = cfg.data if info.data_path is None else replace(cfg.data, path=info.data_path)
    key = repr(data_cfg)
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = load_splits(data_cfg)
    train: ImageDataset = _SPLITS[key].train
    if info.partition_id is None:
        return train
    assert info.num_partitions is not None
    return load_partition(train, cfg.partition, info.partition_id, info.num_partitions)


def site_ledger(cfg: RootConfig, info: SiteInfo) -> PrivacyLedger | None:
    """Open the site's own ledger (``None`` when privacy is off: nothing is charged)."""
    if not cfg.privacy.enabled:
        return None
    pr = cfg.privacy
    return PrivacyLedger(
        info.state_dir, budget=epsilon_budget(pr), delta=pr.delta, accountant=pr.accountant
    )


def answer_budget_query(cfg: RootConfig, info: SiteInfo, run_id: str, round: int) -> bool:
    """Whether this site affords ``round`` (see :mod:`ssl_fed.fed.budget`)."""
    data = site_data(cfg, info)
    return can_train(cfg, site_ledger(cfg, info), len(data), run_id, round)


def train_round(
    cfg: RootConfig,
    info: SiteInfo,
    received: list[fa.NDArray],
    context: Context,
    run_id: str,
    round: int,
) -> tuple[list[fa.NDArray], dict[str, float]]:
    """Train one round from the received global weights; return (delta arrays, scalars).

    Under DP the core draws Poisson sampling and noise from OS entropy (never from the public
    ``train.seed``), so an observer cannot regenerate the noise.
    """
    data = site_data(cfg, info)
    ledger = site_ledger(cfg, info)
    if ledger is not None and already_charged(ledger, run_id, round):
        raise RuntimeError(f"round {round} of run {run_id} was already charged here")
    share = cfg.aggregation.share_heads
    model = build_model(cfg.encoder, data.channels)
    fa.load_arrays(model, received, share)
    if not share and HEADS_RECORD in context.state.array_records:
        kept = context.state.array_records[HEADS_RECORD].to_torch_state_dict()
        model.rotation.load_state_dict(
            {k[9:]: v for k, v in kept.items() if k.startswith("rotation.")}
        )
        model.projection.load_state_dict(
            {k[11:]: v for k, v in kept.items() if k.startswith("projection.")}
        )
    task = build_task(model, cfg.task, cfg.data.augment, data.image_size, data.channels)
    local = replace(cfg, train=replace(cfg.train, progress=False))
    from ssl_fed.train.local import train_local

    result = train_local(task, data, local, ledger=ledger, run_id=run_id, round=round)
    new = fa.state_to_arrays(fa.federated_state(model, share))
    delta = fa.subtract_arrays(new, [np.asarray(a, np.float32) for a in received])
    biggest = fa.max_abs(delta)
    if biggest > cfg.aggregation.clipping_range:
        log.warning(
            "largest |delta| %.4g exceeds aggregation.clipping_range %.4g: SecAgg+ clips it",
            biggest,
            cfg.aggregation.clipping_range,
        )
    if not share:
        heads: dict[str, Any] = {f"rotation.{k}": v for k, v in model.rotation.state_dict().items()}
        heads |= {f"projection.{k}": v for k, v in model.projection.state_dict().items()}
        context.state.array_records[HEADS_RECORD] = ArrayRecord(
            {k: v.detach().clone() for k, v in heads.items()}
        )
    scalars = {f"loss-{k}": float(v) for k, v in result.losses.items()}
    if ledger is not None:
        scalars["epsilon"] = float(ledger.epsilon())
        scalars["epsilon-remaining"] = float(ledger.remaining())
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return delta, scalars
