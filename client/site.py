"""One site: where its data and ledger live, what it answers, and one local training.

Everything here runs at the site. The only things handed back to the ClientApp for sending are the
update arrays (deltas of the federated weights) and whitelisted scalars; the ClientApp's guard
checks them again before SecAgg+ masks them.

The training losses are unclipped, un-noised means over private images, so they never leave:
each round appends them to ``<state-dir>/site_metrics.jsonl`` (:data:`SITE_METRICS_FILE`), the
site's own record. ε and ε-remaining leave only when the site's sampling rate comes from a public
size (:func:`declared_size`), because q = B/n with the exact n makes them functions of n.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget
from ssl_fed.data import ImageDataset, load_partition, load_splits
from ssl_fed.deploy.site_data import deployed_splits
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.budget import already_charged, can_train
from ssl_fed.models import build_model
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.tasks import build_task
from ssl_fed.train.sampling import privacy_units

log = logging.getLogger("ssl_fed.client")

HEADS_RECORD = "local-heads"
SITE_METRICS_FILE = "site_metrics.jsonl"
"""Per-round site-local record (losses, steps, ε) under the site's state directory."""
_SPLITS: dict[str, Any] = {}


@dataclass(frozen=True)
class SiteInfo:
    """Where a site's data and state live, and its public label."""

    label: int
    state_dir: Path
    data_path: str | None
    partition_id: int | None
    num_partitions: int | None
    epsilon_budget: float | None = None
    data_format: str = "folder"
    public_size: int | None = None
    key_dir: Path | None = None
    """Where the ledger's secret lives (node config ``key-dir``: beside the node key)."""
    eval_fraction: float | None = None
    """Deployed: the hold-out for site-local evaluation (``eval-fraction``; none by default)."""
    on_bad_file: str = "error"
    """Deployed: ``skip`` or ``error`` on an unreadable image (``on-bad-file``)."""


def _node_budget(node_config: dict[str, Any]) -> float | None:
    if "epsilon-budget" not in node_config:
        return None
    value = float(node_config["epsilon-budget"])
    if not value > 0:
        raise ConfigError(f"node config epsilon-budget={value}: use a positive ε budget")
    return value


def _node_public_size(node_config: dict[str, Any]) -> int | None:
    if "public-size" not in node_config:
        return None
    value = int(node_config["public-size"])
    if value < 1:
        raise ConfigError(f"node config public-size={value}: declare the site's size (>= 1)")
    return value


def declared_size(n: int) -> int:
    """Return the simulation operator's public size for a partition of ``n`` images.

    Keeps the top 3 bits of n (rounds down to a multiple of ``2^(floor(log2 n) - 2)``), so the
    declared size is within 25 % of n (n = 125 -> 112) and one image more or less rarely
    changes it; in a simulation the partition plan is the operator's own, hence public.
    """
    step = 2 ** max(0, int(math.log2(n)) - 2) if n >= 1 else 1
    return max(1, (n // step) * step)


def site_info(cfg: RootConfig, node_config: dict[str, Any]) -> SiteInfo:
    """Read the site's node config.

    Simulation: ``partition-id``/``num-partitions`` (state dir ``<out>/sites/site_<id>`` unless
    ``state-dir`` is set). Deployment: ``data-path`` and ``state-dir``, optional ``site-id``,
    ``public-size`` (the operator's declared size; ``data.public_size`` of the run config
    otherwise, else the exact n is used and ε is not reported), ``key-dir`` (the ledger's
    secret), ``eval-fraction`` (hold-out; none by default) and ``on-bad-file``
    (``ssl-fed site start`` writes them, docs/deployment.md).
    """
    if "partition-id" in node_config:
        pid, num = int(node_config["partition-id"]), int(node_config["num-partitions"])
        default_dir = Path(cfg.out) / "sites" / f"site_{pid}"
        state = Path(str(node_config.get("state-dir", default_dir)))
        return SiteInfo(
            pid,
            state,
            None,
            pid,
            num,
            _node_budget(node_config),
            public_size=_node_public_size(node_config),
        )
    if "data-path" not in node_config or "state-dir" not in node_config:
        raise ConfigError(
            'a deployed site needs --node-config \'data-path="DIR" state-dir="DIR"\' '
            "(its images, and where its privacy ledger lives)"
        )
    label = int(node_config.get("site-id", -1))
    data_path = str(node_config["data-path"])
    fmt = str(node_config.get("data-format", "npz" if data_path.endswith(".npz") else "folder"))
    if fmt not in {"folder", "npz"}:
        raise ConfigError(f"node config data-format={fmt!r}: use folder or npz")
    return SiteInfo(
        label,
        Path(str(node_config["state-dir"])),
        data_path,
        None,
        None,
        _node_budget(node_config),
        fmt,
        _node_public_size(node_config),
        Path(str(node_config["key-dir"])) if "key-dir" in node_config else None,
        float(node_config["eval-fraction"]) if "eval-fraction" in node_config else None,
        str(node_config.get("on-bad-file", "error")),
    )


def site_config(cfg: RootConfig, info: SiteInfo) -> RootConfig:
    """Apply the site's own ε budget and public size (node config) over the run config's.

    The site, not the server, owns the budget (DESIGN §1): the ledger refuses training past the
    node's budget whatever the server asks, and σ is calibrated for at most that budget
    (``target_epsilon = min(run target, site budget)``), so a server asking for a larger ε gets
    a site that trains within its own limit instead of one that declines after one round.
    The public size is the node's ``public-size`` when set; in a simulation without a declared
    ``data.public_size`` it is :func:`declared_size` of the partition (the operator's plan).
    """
    if info.public_size is not None:
        cfg = replace(cfg, data=replace(cfg.data, public_size=info.public_size))
    elif info.partition_id is not None and cfg.data.public_size is None:
        n = len(site_data(cfg, info))
        cfg = replace(cfg, data=replace(cfg.data, public_size=declared_size(n)))
    if info.epsilon_budget is None:
        return cfg
    budget = info.epsilon_budget
    privacy = replace(
        cfg.privacy, epsilon_budget=budget, target_epsilon=min(cfg.privacy.target_epsilon, budget)
    )
    return replace(cfg, privacy=privacy)


def site_data(cfg: RootConfig, info: SiteInfo) -> ImageDataset:
    """Return the site's training images (cached per process: an actor serves many sites).

    A deployed site (``data-path``) trains on every image unless its node config sets
    ``eval-fraction`` (:func:`ssl_fed.deploy.site_data.deployed_splits`); a simulation keeps the
    ``data.test_fraction`` hold-out of its labelled set.
    """
    data_cfg = (
        cfg.data
        if info.data_path is None
        else replace(
            cfg.data,
            name=info.data_format,
            path=info.data_path,
            test_path=None,
            on_bad_file=info.on_bad_file,
        )
    )
    key = repr((replace(data_cfg, public_size=None), info.eval_fraction))
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = (
            load_splits(data_cfg)
            if info.data_path is None
            else deployed_splits(data_cfg, info.eval_fraction)
        )
    train: ImageDataset = _SPLITS[key].train
    if info.partition_id is None:
        return train
    assert info.num_partitions is not None
    return load_partition(train, cfg.partition, info.partition_id, info.num_partitions)


def declared_update(cfg: RootConfig, channels: int) -> tuple[list[fa.ArraySpec], frozenset[str]]:
    """Return the update arrays and whitelisted metric names a site may send (for the guard)."""
    from ssl_fed.fed.guard import allowed_fit_metrics

    model = build_model(cfg.encoder, channels)
    specs = fa.array_specs(model, cfg.aggregation.share_heads)
    return specs, allowed_fit_metrics()


def site_ledger(cfg: RootConfig, info: SiteInfo) -> PrivacyLedger | None:
    """Open the site's own ledger (``None`` when privacy is off: nothing is charged)."""
    cfg = site_config(cfg, info)
    if not cfg.privacy.enabled:
        return None
    pr = cfg.privacy
    return PrivacyLedger(
        info.state_dir,
        budget=epsilon_budget(pr),
        delta=pr.delta,
        accountant=pr.accountant,
        key_dir=info.key_dir if info.key_dir is not None else pr.key_dir,
        privacy_unit=pr.unit,
    )


def answer_budget_query(cfg: RootConfig, info: SiteInfo, run_id: str, round: int) -> bool:
    """Whether this site affords ``round`` (see :mod:`ssl_fed.fed.budget`)."""
    cfg = site_config(cfg, info)
    data = site_data(cfg, info)
    return can_train(cfg, site_ledger(cfg, info), privacy_units(data, cfg), run_id, round)


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
    cfg = site_config(cfg, info)
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
    record_round(info, run_id, round, result.losses, result.steps)
    scalars: dict[str, float] = {}
    if ledger is not None and result.size_is_public:
        scalars["epsilon"] = float(ledger.epsilon())
        scalars["epsilon-remaining"] = float(ledger.remaining())
    torch.set_num_threads(max(1, torch.get_num_threads()))
    return delta, scalars


def record_round(
    info: SiteInfo, run_id: str, round: int, losses: dict[str, float], steps: int
) -> None:
    """Append the round's losses to the site-local ``site_metrics.jsonl`` (never sent)."""
    info.state_dir.mkdir(parents=True, exist_ok=True)
    line = {"run_id": run_id, "round": round, "steps": steps, "losses": losses}
    with (info.state_dir / SITE_METRICS_FILE).open("a") as f:
        f.write(json.dumps(line) + "\n")
