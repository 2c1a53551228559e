"""One config schema and one loader for every entry point.

The YAML files in ``configs/`` are composed with Hydra's compose API, merged onto the frozen
dataclass schemas below (so types are checked), and then validated value by value. Defaults live
here and in ``configs/``; nowhere else. Every value error is a :class:`ConfigError` that names the
field, the bad value and the fix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


@dataclass
class AugmentConfig:
    """Contrastive view augmentations (kornia, batched). Flips only where the data allow."""

    crop_scale_min: float = 0.6
    max_rotation_deg: float = 10.0
    max_translate: float = 0.1
    hflip: bool = False
    noise_std: float = 0.05
    color_jitter: float = 0.4


@dataclass
class DataConfig:
    """Where a site's images come from (``name`` in digits | folder | npz | idx | fashion_mnist)."""

    name: str = "digits"
    path: str | None = None
    test_path: str | None = None
    image_size: int = 8
    channels: int | None = None
    on_bad_file: str = "error"
    test_fraction: float = 0.3
    seed: int = 0
    public_size: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class PartitionConfig:
    """How a simulation splits one dataset into sites (flwr-datasets partitioners)."""

    kind: str = "dirichlet"
    alpha: float = 0.5
    classes_per_site: int = 2
    seed: int = 0


@dataclass
class TaskConfig:
    """Pretext task: rotation | contrastive | joint."""

    name: str = "joint"
    temperature: float = 0.2
    negatives: str = "group"
    group_size: int = 4
    lambda_rot: float = 1.0
    lambda_con: float = 1.0
    multiplicity: int = 1


@dataclass
class EncoderConfig:
    """GroupNorm CNN encoder and its heads."""

    name: str = "cnn_gn"
    width: int = 32
    norm_groups: int = 8
    proj_hidden: int = 128
    proj_dim: int = 64


@dataclass
class PrivacyConfig:
    """DP-SGD settings. ``enabled=false`` is the non-private baseline."""

    enabled: bool = True
    target_epsilon: float = 8.0
    epsilon_budget: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    noise_multiplier: float | None = None
    grad_method: str = "vmap"
    trainable: list[str] = field(default_factory=list)
    key_dir: str | None = None


@dataclass
class TrainConfig:
    """Local training loop."""

    local_epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    optimizer: str = "adam"
    max_rounds: int = 1
    seed: int = 0
    vmap_chunk_size: int | None = None
    progress: bool = True


@dataclass
class EvalConfig:
    """Frozen-feature evaluation: linear probe at k labels per class (-1 = all), kNN."""

    labels_per_class: list[int] = field(default_factory=lambda: [1, 5, 10, -1])
    draws: int = 5
    knn_k: int = 5
    seed: int = 0
    every: int = 1
    public_path: str | None = None


@dataclass
class SimConfig:
    """A simulated federation: ``num_sites`` virtual sites on one machine (Ray backend)."""

    num_sites: int = 10
    rounds: int = 8
    sites_per_round: int | None = None
    fraction: float = 1.0
    seed: int = 0
    client_cpus: float = 1.0
    halt_after_round: int | None = None
    attack: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AggregationConfig:
    """How site updates are combined (``configs/aggregation/*.yaml`` explains every key).

    ``secagg`` (default): ssl-fed's own SecAgg+ (:mod:`ssl_fed.secagg`; ``neighbours``,
    ``threshold``, ``value_bits``, ``stage_timeout``). ``flower-secaggplus``: Flower's stock
    SecAgg+ on the legacy stack, for comparison (``num_shares``, ``reconstruction_threshold``,
    ``quantization_range``). ``plain``: no secure aggregation, comparison only. Shared:
    ``clipping_range`` (bound on |delta| per value), ``timeout`` (the train/masked-input stage).
    """

    name: str = "secagg"
    clipping_range: float = 0.5
    timeout: float = 120.0
    share_heads: bool = False
    query_timeout: float = 60.0
    neighbours: int | None = None
    threshold: int | None = None
    value_bits: int | None = None
    stage_timeout: float = 60.0
    num_shares: int = 3
    reconstruction_threshold: int = 2
    quantization_range: int = 4194304


@dataclass
class PretrainConfig:
    """Privacy-free pretraining on generated images (``ssl-fed pretrain-synthetic``)."""

    family: str = "strokes"
    num_images: int = 8000
    epochs: int = 40


@dataclass
class RootConfig:
    """The composed configuration of one run."""

    data: DataConfig = field(default_factory=DataConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    resume: bool = False
    overwrite: bool = False
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    out: str = "outputs/train-local"
    init: str | None = None
    state_dir: str | None = None
    run_id: str | None = None


def config_dir() -> Path:
    """Return the ``configs/`` directory (``SSL_FED_CONFIG_DIR`` overrides it)."""
    env = os.environ.get("SSL_FED_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no config.yaml in {path}; install ssl-fed from its source tree (pip install -e .) "
            "or point SSL_FED_CONFIG_DIR at the project's configs/ directory"
        )
    return path


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with Hydra overrides (``key=value`` strings)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"could not compose the config: {err}") from err


def to_root_config(raw: DictConfig | dict[str, Any]) -> RootConfig:
    """Merge a composed config onto the schema, check types, and validate values."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RootConfig), raw)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config does not match the schema: {err}") from err
    assert isinstance(cfg, RootConfig)
    validate_config(cfg)
    return cfg


def load_config(overrides: list[str] | None = None, config_name: str = "config") -> RootConfig:
    """Compose, type-check and validate the run's config: the one loader."""
    return to_root_config(compose_config(overrides, config_name))


def _require(ok: bool, name: str, value: object, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {fix}")


def _require_finite_positive(value: float | None, name: str, fix: str) -> None:
    """Refuse anything but a finite number > 0 (``inf`` and ``nan`` included); ``None`` passes."""
    if value is not None:
        _require(math.isfinite(value) and value > 0, name, value, f"{fix} (finite)")


def validate_config(cfg: RootConfig) -> None:
    """Check every value that the schema's types cannot; raise :class:`ConfigError`."""
    d, p, t, pr, tr, ev = cfg.data, cfg.partition, cfg.task, cfg.privacy, cfg.train, cfg.eval
    _require(
        d.name in DATA_NAMES, "data.name", d.name, f"use one of {', '.join(sorted(DATA_NAMES))}"
    )
    _require(d.name == "digits" or bool(d.path), "data.path", d.path, "set data.path=DIR or FILE")
    _require(4 <= d.image_size <= 64, "data.image_size", d.image_size, "use 4..64 pixels")
    _require(d.channels in (None, 1, 3), "data.channels", d.channels, "use 1, 3 or null")
    _require(d.on_bad_file in {"error", "skip"}, "data.on_bad_file", d.on_bad_file, "error|skip")
    _require(0 < d.test_fraction < 1, "data.test_fraction", d.test_fraction, "use 0 < f < 1")
    _require(
        d.public_size is None or d.public_size >= 1,
        "data.public_size",
        d.public_size,
        "declare the site's public size (>= 1 image, e.g. n rounded down to a bucket) or null",
    )
    a = d.augment
    _require(0 < a.crop_scale_min <= 1, "data.augment.crop_scale_min", a.crop_scale_min, "(0, 1]")
    _require(a.noise_std >= 0, "data.augment.noise_std", a.noise_std, "use a value >= 0")
    _require(
        p.kind in {"iid", "dirichlet", "pathological"},
        "partition.kind",
        p.kind,
        "use iid, dirichlet or pathological",
    )
    _require_finite_positive(p.alpha, "partition.alpha", "use alpha > 0 (smaller is more skewed)")
    _require(p.classes_per_site >= 1, "partition.classes_per_site", p.classes_per_site, ">= 1")
    _require(
        t.name in {"rotation", "contrastive", "joint"},
        "task.name",
        t.name,
        "use rotation, contrastive or joint",
    )
    _require(t.temperature > 1e-3, "task.temperature", t.temperature, "use a value > 0.001")
    _require_finite_positive(t.temperature, "task.temperature", "use a value > 0.001")
    _require(bool(cfg.out.strip()), "out", cfg.out, "name an output directory, e.g. out=runs/a")
    _require(t.negatives in {"group", "batch"}, "task.negatives", t.negatives, "group|batch")
    _require(t.group_size >= 1, "task.group_size", t.group_size, "use >= 1")
    _require(
        1 <= t.multiplicity <= 16,
        "task.multiplicity",
        t.multiplicity,
        "use 1 (off) to 16 augmented view sets per image",
    )
    _require(
        t.lambda_rot >= 0 and t.lambda_con >= 0,
        "task.lambda_*",
        (t.lambda_rot, t.lambda_con),
        "weights must be >= 0",
    )
    _require(cfg.encoder.name == "cnn_gn", "encoder.name", cfg.encoder.name, "use cnn_gn")
    _require(
        cfg.encoder.width >= 4 and cfg.encoder.width % cfg.encoder.norm_groups == 0,
        "encoder.width",
        cfg.encoder.width,
        "use a multiple of encoder.norm_groups, >= 4",
    )
    _require_finite_positive(pr.target_epsilon, "privacy.target_epsilon", "use ε > 0")
    _require_finite_positive(
        pr.epsilon_budget, "privacy.epsilon_budget", "use a positive ε or null (= target_epsilon)"
    )
    _require(0 < pr.delta < 1, "privacy.delta", pr.delta, "use 0 < δ < 1/n (e.g. 1e-5)")
    _require_finite_positive(pr.max_grad_norm, "privacy.max_grad_norm", "use C > 0")
    _require(
        pr.grad_method in {"vmap", "hooks"},
        "privacy.grad_method",
        pr.grad_method,
        "use vmap (torch.func over units) or hooks (one batched pass)",
    )
    _require(pr.accountant in {"rdp", "prv"}, "privacy.accountant", pr.accountant, "rdp|prv")
    _require_finite_positive(
        pr.noise_multiplier,
        "privacy.noise_multiplier",
        "use σ > 0, or null to calibrate σ from target_epsilon",
    )
    _require(tr.local_epochs >= 1, "train.local_epochs", tr.local_epochs, "use >= 1")
    _require(tr.batch_size >= 1, "train.batch_size", tr.batch_size, "use >= 1")
    _require_finite_positive(tr.lr, "train.lr", "use a learning rate > 0")
    _require(tr.optimizer in {"adam", "sgd"}, "train.optimizer", tr.optimizer, "adam|sgd")
    _require(tr.max_rounds >= 1, "train.max_rounds", tr.max_rounds, "use >= 1")
    _require(
        tr.vmap_chunk_size is None or tr.vmap_chunk_size >= 1,
        "train.vmap_chunk_size",
        tr.vmap_chunk_size,
        "use >= 1 or null",
    )
    _require(
        all(k == -1 or k >= 1 for k in ev.labels_per_class),
        "eval.labels_per_class",
        ev.labels_per_class,
        "use positive counts, or -1 for all labels",
    )
    pt = cfg.pretrain
    _require(pt.num_images >= 16, "pretrain.num_images", pt.num_images, "use at least 16 images")
    _require(pt.epochs >= 1, "pretrain.epochs", pt.epochs, "use >= 1")
    _require(
        cfg.init is None or Path(cfg.init).is_dir(),
        "init",
        cfg.init,
        "point it at a directory written by `ssl-fed pretrain-synthetic` (encoder.pt, card.json)",
    )
    _require(ev.draws >= 1 and ev.knn_k >= 1, "eval.draws/knn_k", (ev.draws, ev.knn_k), ">= 1")
    _require(ev.every >= 1, "eval.every", ev.every, "evaluate every N >= 1 rounds")
    validate_federation(cfg)
    if pr.enabled and t.name != "rotation" and t.negatives == "batch":
        raise ConfigError(
            f"task.negatives=batch with task.name={t.name} under DP has no stated sensitivity: "
            "NT-Xent with in-batch negatives makes every image's gradient depend on every other "
            "image, so removing one image can change the clipped sum by up to ~2nC while the "
            "accountant would assume C. Use task.negatives=group (group-wise clipping, "
            "sensitivity 2C) or privacy=off."
        )


def validate_federation(cfg: RootConfig) -> None:
    """Check the ``sim`` and ``aggregation`` groups (federation layer) before anything starts."""
    s, a = cfg.sim, cfg.aggregation
    _require(s.num_sites >= 1, "sim.num_sites", s.num_sites, "use at least 1 site")
    _require(s.rounds >= 1, "sim.rounds", s.rounds, "use at least 1 round")
    _require(0 < s.fraction <= 1, "sim.fraction", s.fraction, "use 0 < fraction <= 1")
    _require(
        s.sites_per_round is None or 1 <= s.sites_per_round <= s.num_sites,
        "sim.sites_per_round",
        s.sites_per_round,
        f"use 1..sim.num_sites ({s.num_sites}) or null (= fraction x num_sites)",
    )
    _require_finite_positive(s.client_cpus, "sim.client_cpus", "use > 0 CPUs per site")
    _require(
        s.halt_after_round is None or s.halt_after_round >= 1,
        "sim.halt_after_round",
        s.halt_after_round,
        "use a round >= 1 or null",
    )
    from ssl_fed.attack import parse_attacks  # late: ssl_fed.attack imports ConfigError

    parse_attacks(list(s.attack), s.num_sites)
    _require(
        a.name in AGGREGATIONS,
        "aggregation.name",
        a.name,
        "use secagg (default), flower-secaggplus (Flower's stock SecAgg+, comparison) or plain "
        "(no secure aggregation; comparison only)",
    )
    _require(a.num_shares >= 3, "aggregation.num_shares", a.num_shares, "use >= 3")
    _require(
        2 <= a.reconstruction_threshold < a.num_shares,
        "aggregation.reconstruction_threshold",
        a.reconstruction_threshold,
        f"use 2 <= threshold < num_shares ({a.num_shares})",
    )
    _require_finite_positive(a.clipping_range, "aggregation.clipping_range", "use > 0")
    _require(
        2 <= a.quantization_range <= 2**24,
        "aggregation.quantization_range",
        a.quantization_range,
        "use 2..2^24 levels (the 2^32 modulus must hold the sum of all sites)",
    )
    _require_finite_positive(a.timeout, "aggregation.timeout", "use a timeout in seconds > 0")
    _require_finite_positive(a.query_timeout, "aggregation.query_timeout", "use > 0 s")
    _require_finite_positive(a.stage_timeout, "aggregation.stage_timeout", "use > 0 s")
    if a.name == "secagg":
        from ssl_fed.fed.secagg import check_secagg_config

        check_secagg_config(cfg)


def validate_output(cfg: RootConfig) -> None:
    """Check ``out`` on disk before a command writes there: a directory, not a finished run.

    A finished run (``metrics.json``) is kept unless ``overwrite=true`` (or ``resume=true``).
    """
    out = Path(cfg.out)
    _require(not out.exists() or out.is_dir(), "out", cfg.out, "it is a file; name a directory")
    finished = (out / "metrics.json").exists() and not (cfg.overwrite or cfg.resume)
    _require(
        not finished, "out", cfg.out, "it holds a finished run; use a new out= or overwrite=true"
    )


DATA_NAMES = frozenset({"digits", "folder", "npz", "idx", "fashion_mnist"})
"""Valid ``data.name`` values (the loaders in :data:`ssl_fed.data.loaders.DATASETS`)."""

AGGREGATIONS = ("secagg", "flower-secaggplus", "plain")
"""Valid ``aggregation.name`` values; the first is the default."""


def epsilon_budget(cfg: PrivacyConfig) -> float:
    """Return the site's lifetime ε budget (``epsilon_budget``, else ``target_epsilon``)."""
    return cfg.epsilon_budget if cfg.epsilon_budget is not None else cfg.target_epsilon
