"""Train one site's encoder (and heads) for E local epochs: the loop every entry point shares.

Data flow: Poisson batch of image indices -> views -> clipping units -> one gradient step (plain,
or DP-SGD wrapping it) -> after E epochs, the encoder's new weights. Privacy enters only through
the privacy engine (:mod:`ssl_fed.privacy.engine`): it builds the step and charges the ledger
before the loop, and says whether the run key of the per-image streams
(:mod:`ssl_fed.train.randomness`) is secret (DP) or derived from ``train.seed`` (privacy off).
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import with_persons
from ssl_fed.privacy.dpsgd import GradientStep
from ssl_fed.privacy.engine import LedgerSource, PrivacyEngine, build_engine
from ssl_fed.privacy.schedule import Schedule, make_schedule
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, gather_units, plan_units
from ssl_fed.train.randomness import draw_run_key
from ssl_fed.train.sampling import Sampler, make_sampler, unit_count

log = logging.getLogger("ssl_fed.train")


@dataclass(frozen=True)
class LocalResult:
    """What one local training produced.

    Only ``encoder_state`` may leave a site (as an update), and ``epsilon`` only when
    ``size_is_public``; the losses are unclipped means over private images: site-local records.
    """

    encoder_state: dict[str, torch.Tensor]
    num_examples: int
    losses: dict[str, float]
    epsilon: float | None
    noise_multiplier: float | None
    steps: int
    plan: UnitPlan
    size_is_public: bool = True


def schedule_for(cfg: RootConfig, n: int) -> Schedule:
    """Return the public schedule of a training on ``n`` units (``data.public_size`` first)."""
    return make_schedule(n, cfg.train.batch_size, cfg.train.local_epochs, cfg.data.public_size)


def make_optimizer(task: PretextTask, cfg: RootConfig) -> torch.optim.Optimizer:
    """Build the optimizer of ``task``'s trainable parameters (``train.optimizer``, ``lr``)."""
    params = [p for _, p in task.trainable_named_parameters()]
    if cfg.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.train.lr)
    return torch.optim.SGD(params, lr=cfg.train.lr, momentum=0.9)


def sampler_for(
    engine: PrivacyEngine, cfg: RootConfig, data: ImageDataset, plan: UnitPlan, round: int
) -> Sampler:
    """Return this training's sampler over its privacy units (:mod:`ssl_fed.train.sampling`).

    The subsampling amplification the accountant credits holds only if nobody can predict which
    units were sampled, so under DP the run key comes from ``secrets`` and never from the
    public ``train.seed``. With privacy off the run is reproducible from ``train.seed``.
    """
    key = draw_run_key(engine.secret_randomness, cfg.train.seed, round)
    rate = engine.schedule.sample_rate
    return make_sampler(key, data, plan, rate, cfg.privacy.max_images_per_person)


def apply_trainable(task: PretextTask, patterns: list[str]) -> None:
    """Freeze every parameter whose name (``encoder.block3.0.weight``...) matches no prefix.

    Training fewer parameters under DP puts the same noise std on fewer coordinates, so less
    noise per useful signal (Tramèr & Boneh, arXiv 2011.11660; De et al., arXiv 2204.13650). The
    accounting is unchanged: ε depends on σ, q and the steps, not on what is trained. Frozen
    parameters get no gradient, no noise and no optimizer state, so they stay bit-identical.
    """
    if not patterns:
        return
    patterns = [task.model.head_prefix(p) for p in patterns]
    names = [name for name, _ in task.model.named_parameters()]
    for pattern in patterns:
        if not any(n == pattern or n.startswith(pattern + ".") for n in names):
            prefixes = sorted({".".join(n.split(".")[:2]) for n in names})
            raise ValueError(
                f"privacy.trainable entry {pattern!r} matches no parameter; valid prefixes "
                f"include {prefixes}"
            )
    for name, param in task.model.named_parameters():
        param.requires_grad_(any(name == p or name.startswith(p + ".") for p in patterns))


def run_steps(
    task: PretextTask,
    data: ImageDataset,
    cfg: RootConfig,
    step: GradientStep,
    plan: UnitPlan,
    schedule: Schedule,
    sampler: Sampler,
) -> tuple[dict[str, float], int]:
    """Run every step of ``schedule``; return the summed loss terms and the images seen.

    Step ``t`` (counted across epochs) includes unit ``u`` (an image, or a person) when its own
    uniform for ``(t, "poisson")`` is below q, and draws its views, image subset and group id from
    its own stream at ``t`` (:mod:`ssl_fed.train.sampling`), so which other units are present
    never changes unit ``u``'s draws. An empty batch still takes a step (noise-only under DP).
    """
    sums = {name: 0.0 for name in task.term_names()}
    seen = 0
    task.train()
    bar = tqdm(
        total=schedule.steps,
        desc=f"train {cfg.task.name}",
        unit="step",
        leave=False,
        disable=not (cfg.train.progress and sys.stderr.isatty()),
    )
    for t in range(schedule.steps):
        index, draws, unit_index, mask = sampler.batch(t)
        views = task.make_views(data.images[torch.from_numpy(index)], draws)
        terms = step(gather_units(views, unit_index), mask)
        for name, value in terms.items():
            sums[name] += value
        seen += len(index)
        bar.update(1)
        bar.set_postfix({k: f"{v / max(seen, 1):.3f}" for k, v in sums.items()})
    bar.close()
    return sums, seen


def train_local(
    task: PretextTask,
    data: ImageDataset,
    cfg: RootConfig,
    *,
    ledger: LedgerSource = None,
    run_id: str,
    round: int = 1,
    engine: PrivacyEngine | None = None,
) -> LocalResult:
    """Train ``task`` on one site's ``data`` under ``engine`` (default: built from ``cfg``).

    The engine charges ``ledger`` (a DP training needs one) before the first step.

    Raises
    ------
    PrivacyError, BudgetExceededError, LedgerError
        Before any training, when the privacy of the run cannot be stated or afforded.
    """
    if cfg.privacy.unit == "person":
        data = with_persons(data, cfg.data)
    units = unit_count(data, cfg.privacy.unit)
    if engine is None:
        engine = build_engine(cfg, ledger, schedule_for(cfg, units), n=units, run_id=run_id)
    apply_trainable(task, cfg.privacy.trainable)
    plan = plan_units(task, cfg.task, cfg.train.batch_size, cfg.privacy.unit)
    step = engine.make_private(task, make_optimizer(task, cfg), plan, round=round)
    sampler = sampler_for(engine, cfg, data, plan, round)
    sums, seen = run_steps(task, data, cfg, step, plan, engine.schedule, sampler)
    losses = {k: v / max(seen, 1) for k, v in sums.items()}
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError(f"training diverged (losses {losses}); lower train.lr")
    encoder_state = {k: v.detach().clone() for k, v in task.model.encoder.state_dict().items()}
    epsilon = engine.epsilon()
    log.info(
        "trained %d steps on %d images: losses %s, ε=%s",
        engine.schedule.steps,
        len(data),
        losses,
        epsilon,
    )
    return LocalResult(
        encoder_state,
        len(data),
        losses,
        epsilon,
        engine.noise_multiplier(),
        engine.schedule.steps,
        plan,
        engine.schedule.size_is_public,
    )
