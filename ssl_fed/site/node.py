"""Where a site's data and state live, and its view of the run config.

Simulation sites are partitions of one data set (``partition-id``); deployed sites read their own
images (``data-path``). Both keep their ledger and records under their state directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.data import DataSplits, ImageDataset, load_partition, load_splits
from ssl_fed.deploy.site_data import deployed_splits
from ssl_fed.privacy.engine import plan_federated_trainings

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
    max_noise_multiplier: float | None = None
    """The site policy's σ ceiling (``max-noise-multiplier``; else the run config's)."""


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
    ceiling = node_config.get("max-noise-multiplier")
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
        None if ceiling is None else float(ceiling),
    )


def site_config(cfg: RootConfig, info: SiteInfo) -> RootConfig:
    """Return the site's view of the run config: its own ε budget, public size and σ plan.

    The site, not the server, owns the budget (DESIGN §1): the ledger refuses training past the
    node's budget whatever the server asks, and the privacy engine calibrates σ for at most that
    budget (:attr:`~ssl_fed.privacy.engine.DPSGDEngine.target_epsilon`), so a server asking for
    a larger ε gets a site that trains within its own limit instead of one that declines after
    one round. The public size is the node's ``public-size`` when set; in a simulation without a
    declared ``data.public_size`` it is :func:`declared_size` of the partition (the operator's
    plan). σ is planned for every round of the run
    (:func:`~ssl_fed.privacy.engine.plan_federated_trainings`), whichever entry point composed
    the config.
    """
    cfg = plan_federated_trainings(cfg)
    if info.public_size is not None:
        cfg = replace(cfg, data=replace(cfg.data, public_size=info.public_size))
    elif info.partition_id is not None and cfg.data.public_size is None:
        n = len(site_data(cfg, info))
        cfg = replace(cfg, data=replace(cfg.data, public_size=declared_size(n)))
    if info.max_noise_multiplier is not None:  # the operator's σ ceiling, not the server's
        cfg = replace(
            cfg, privacy=replace(cfg.privacy, max_noise_multiplier=info.max_noise_multiplier)
        )
    if info.epsilon_budget is None:
        return cfg
    return replace(cfg, privacy=replace(cfg.privacy, epsilon_budget=info.epsilon_budget))


def site_data(cfg: RootConfig, info: SiteInfo) -> ImageDataset:
    """Return the site's training images (cached per process: an actor serves many sites).

    A deployed site (``data-path``) trains on every image unless its node config sets
    ``eval-fraction`` (:func:`ssl_fed.deploy.site_data.deployed_splits`); a simulation keeps the
    ``data.test_fraction`` hold-out of its labelled set.
    """
    train: ImageDataset = _site_splits(cfg, info).train
    if info.partition_id is None:
        return train
    assert info.num_partitions is not None
    persons = cfg.data if cfg.privacy.unit == "person" else None  # split by person (issue 17)
    return load_partition(train, cfg.partition, info.partition_id, info.num_partitions, persons)


def site_holdout(cfg: RootConfig, info: SiteInfo) -> ImageDataset | None:
    """Return a deployed site's ``eval-fraction`` hold-out (``None``: no hold-out was asked for).

    The same cached split :func:`site_data` trains on, so held-out images are never trained on.
    """
    if info.data_path is None or not info.eval_fraction:
        return None
    held: ImageDataset | None = _site_splits(cfg, info).test
    return held


def _site_splits(cfg: RootConfig, info: SiteInfo) -> DataSplits:
    """Load (once per process) the site's splits: what it trains on and what it holds out."""
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
    return _SPLITS[key]  # type: ignore[no-any-return]
