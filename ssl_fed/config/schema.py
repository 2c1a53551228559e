"""The config schema: one dataclass per group, and the only place defaults live.

``configs/<group>/*.yaml`` state only what differs from these defaults (a test enforces it);
:mod:`ssl_fed.config.loader` composes them on top of this schema and the per-group checks in
:mod:`ssl_fed.config.checks` validate the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    """Where a site's images come from: ``name`` is a registered data format.

    The formats are the keys of :data:`ssl_fed.data.loaders.DATASETS` (``configs/data/*.yaml``
    holds one file per format). ``public_size`` is the size the site operator declares, so the
    DP sample rate is ``q = batch_size / public_size``; ``channels=None`` keeps the files' own.
    ``on_bad_file``: ``error`` or ``skip`` (corrupt files are skipped and counted in the log).
    Person ids (for ``privacy.unit=person``, :mod:`ssl_fed.data.persons`): ``manifest`` (a CSV
    ``file,person[,label]``), ``person_folders`` (``DIR/<person>/<files>``), or, for benchmarks
    only, ``synthetic_persons`` = M images per synthetic person.
    """

    name: str = "digits"
    path: str | None = None
    test_path: str | None = None
    image_size: int = 8
    channels: int | None = None
    on_bad_file: str = "error"
    test_fraction: float = 0.3
    seed: int = 0
    public_size: int | None = None
    manifest: str | None = None
    synthetic_persons: int | None = None
    person_folders: bool = False
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
    """Pretext task: ``name`` is a registered task (:data:`ssl_fed.tasks.TASKS`).

    ``negatives=group``: negatives only inside random groups of ``group_size`` (group-wise
    clipping, sensitivity 2C; the only mode allowed under DP for tasks that couple images).
    ``multiplicity``: augmented view sets per image, averaged inside its unit (De et al. 2022).
    """

    name: str = "joint"
    temperature: float = 0.2
    negatives: str = "group"
    group_size: int = 4
    lambda_rot: float = 1.0
    lambda_con: float = 1.0
    multiplicity: int = 1


@dataclass
class EncoderConfig:
    """Encoder (``name`` is a registered encoder, :data:`ssl_fed.models.ENCODERS`) and heads.

    ``cnn_gn``: 3 GroupNorm blocks of ``width, 2*width, 4*width`` channels (no BatchNorm).
    """

    name: str = "cnn_gn"
    width: int = 32
    norm_groups: int = 8
    proj_hidden: int = 128
    proj_dim: int = 64


@dataclass
class PrivacyConfig:
    """DP-SGD settings. ``enabled=false`` is the non-private baseline.

    σ is calibrated from ``target_epsilon`` over ``train.max_rounds`` trainings unless
    ``noise_multiplier`` is set. ``epsilon_budget``: the site's lifetime budget (``None`` =
    ``target_epsilon``). ``trainable``: name prefixes to train (e.g. ``[encoder.block3]``; empty =
    all). ``key_dir``: ledger secret and anchor, outside ``state_dir`` (``None`` =
    ``<state_dir>.keys``). ``grad_method``: ``ghost`` (ghost-norm clipping, no per-unit
    gradients; :mod:`ssl_fed.privacy.ghost`; the fastest in ``benchmarks/dp_step.py``), or the
    reference methods ``vmap`` (torch.func) and ``hooks`` (one pass).
    ``unit``: ``image`` or ``person`` (one person, at most ``max_images_per_person`` images per
    step, is the privacy unit; ε is then per person). ``max_noise_multiplier``: public σ
    ceiling; a run whose calibrated σ would exceed it (too little budget left to learn anything)
    is declined and charges nothing (``None``: no ceiling; ``DPSGDEngine.decide``).
    """

    enabled: bool = True
    target_epsilon: float = 8.0
    epsilon_budget: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    noise_multiplier: float | None = None
    grad_method: str = "ghost"
    trainable: list[str] = field(default_factory=list)
    key_dir: str | None = None
    unit: str = "image"
    max_images_per_person: int = 8
    noise: str = "local"
    min_noisy_sites: int | None = None
    ddp_bits: int = 32
    max_noise_multiplier: float | None = 10.0


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
    local_steps: int = 1


@dataclass
class EvalConfig:
    """Frozen-feature evaluation: linear probe at k labels per class (-1 = all), kNN.

    ``every``: a federation's server probes the global encoder every N rounds (and the last).
    ``public_path``: a deployed server probes only on this public labelled set, never site data.
    """

    labels_per_class: list[int] = field(default_factory=lambda: [1, 5, 10, -1])
    draws: int = 5
    knn_k: int = 5
    seed: int = 0
    every: int = 4
    public_path: str | None = None


@dataclass
class SimConfig:
    """A simulated federation: ``num_sites`` virtual sites on one machine (Ray backend).

    ``rounds`` is also the trainings each site's σ is calibrated for; ``sites_per_round=None``
    takes ``fraction`` x the sites whose budget allows the round; ``halt_after_round`` stops as
    if killed (to test ``resume=true``). ``drift`` / ``on_drift``: injected drift (federated
    rounds and ``python -m simulations.drift``, docs/monitoring.md); ``drift_release`` /
    ``drift_alarm_epsilon``: the simulated sites' policy for their drift monitor. ``attack``:
    malicious sites of the poisoning suite (:mod:`ssl_fed.attack`, docs/poisoning.md).
    """

    num_sites: int = 10
    rounds: int = 8
    sites_per_round: int | None = None
    fraction: float = 1.0
    seed: int = 0
    client_cpus: float = 1.0
    halt_after_round: int | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)
    on_drift: str = "alert"
    drift_release: str = "none"
    drift_alarm_epsilon: float = 0.25
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
    epochs: int = 10  # at train.batch_size 128 (issue 15: was 40 epochs at batch 512)


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


def epsilon_budget(cfg: PrivacyConfig) -> float:
    """Return the site's lifetime ε budget (``epsilon_budget``, else ``target_epsilon``)."""
    return cfg.epsilon_budget if cfg.epsilon_budget is not None else cfg.target_epsilon
