"""Train one site's encoder (and heads) for E local epochs: the loop every entry point shares.

Data flow: Poisson batch of image indices -> views -> clipping units -> one gradient step (plain,
or DP-SGD wrapping it) -> after E epochs, the encoder's new weights. Privacy enters only through
which step is built (:func:`build_step`), the ledger charge before the loop, and the run key of
the per-image streams (:mod:`ssl_fed.train.randomness`: secret under DP, from ``train.seed``
otherwise) that draw every image's inclusion, views and group id.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

import torch
from tqdm import tqdm

from ssl_fed.config import RootConfig, epsilon_budget
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import with_persons
from ssl_fed.privacy.accounting import calibrate_noise
from ssl_fed.privacy.dpsgd import DPSGDStep, GradientStep, PlainStep, check_private_setup
from ssl_fed.privacy.ledger import PrivacyLedger
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


@dataclass(frozen=True)
class Schedule:
    """The public constants of one local training: sample rate and step count.

    ``size_is_public`` is False when no public size was declared and the exact n was used: then
    q, the steps and every ε computed from them are functions of private data and must stay at
    the site.
    """

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    size_is_public: bool = True

    @property
    def steps(self) -> int:
        """Total steps of the training."""
        return self.steps_per_epoch * self.epochs


def make_schedule(n: int, batch_size: int, epochs: int, public_size: int | None) -> Schedule:
    """Poisson rate ``q = min(1, B/N)`` and ``ceil(N/B)`` steps per epoch, N the public size.

    ``N = data.public_size``, the size the site operator declares (e.g. n rounded down to a
    bucket), so that q, the step count, σ and ε are public. Any N keeps the guarantee: each image
    is included with probability exactly q, which is what the accountant records; N only sets
    how many images a batch holds on average (``q·n``). Without a declared N the exact n is
    used, with a warning, and the schedule is marked private (ε then never leaves the site).
    """
    if n < 1:
        raise ValueError("the site has no images; point data.path at a non-empty dataset")
    size = public_size if public_size is not None else n
    q = min(1.0, batch_size / size)
    return Schedule(q, max(1, math.ceil(size / batch_size)), epochs, public_size is not None)


def choose_noise(cfg: RootConfig, ledger: PrivacyLedger, schedule: Schedule, run_id: str) -> float:
    """σ for this run: reused from the run's earlier ledger entries, or calibrated once.

    Calibration sizes σ so that the ledger's prior history plus ``train.max_rounds`` trainings of
    this schedule stays within ``min(target_epsilon, budget)``. A run that already charged the
    ledger keeps its σ, so every round of a run has the same noise.
    """
    pr = cfg.privacy
    if pr.noise_multiplier is not None:
        return pr.noise_multiplier
    earlier = ledger.entries_for(run_id)
    if earlier:
        return earlier[0].noise_multiplier
    target = min(pr.target_epsilon, epsilon_budget(pr))
    return calibrate_noise(
        target_epsilon=target,
        delta=pr.delta,
        sample_rate=schedule.sample_rate,
        steps=schedule.steps * cfg.train.max_rounds,
        prior=ledger.history,
        kind=pr.accountant,
    )


def sampler_for(
    cfg: RootConfig, data: ImageDataset, plan: UnitPlan, schedule: Schedule, round: int
) -> Sampler:
    """Return this training's sampler over its privacy units (:mod:`ssl_fed.train.sampling`).

    The subsampling amplification the accountant credits holds only if nobody can predict which
    units were sampled, so under DP the run key comes from ``secrets`` and never from the
    public ``train.seed``. With privacy off the run is reproducible from ``train.seed``.
    """
    key = draw_run_key(cfg.privacy.enabled, cfg.train.seed, round)
    return make_sampler(key, data, plan, schedule.sample_rate, cfg.privacy.max_images_per_person)


def apply_trainable(task: PretextTask, patterns: list[str]) -> None:
    """Freeze every parameter whose name (``encoder.block3.0.weight``...) matches no prefix.

    Training fewer parameters under DP puts the same noise std on fewer coordinates, so less
    noise per useful signal (Tramèr & Boneh, arXiv 2011.11660; De et al., arXiv 2204.13650). The
    accounting is unchanged: ε depends on σ, q and the steps, not on what is trained. Frozen
    parameters get no gradient, no noise and no optimizer state, so they stay bit-identical.
    """
    if not patterns:
        return
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


def build_step(
    task: PretextTask, cfg: RootConfig, plan: UnitPlan, sigma: float | None
) -> GradientStep:
    """Build the optimizer step: plain, or DP-SGD when ``sigma`` is given."""
    params = [p for _, p in task.trainable_named_parameters()]
    optim: torch.optim.Optimizer
    if cfg.train.optimizer == "adam":
        optim = torch.optim.Adam(params, lr=cfg.train.lr)
    else:
        optim = torch.optim.SGD(params, lr=cfg.train.lr, momentum=0.9)
    if sigma is None:
        return PlainStep(task, optim, cfg.train.batch_size)
    assert plan.sensitivity is not None
    return DPSGDStep(
        task,
        optim,
        noise_multiplier=sigma,
        max_grad_norm=cfg.privacy.max_grad_norm,
        sensitivity=plan.sensitivity,
        expected_batch_size=cfg.train.batch_size,
        chunk_size=cfg.train.vmap_chunk_size,
        method=cfg.privacy.grad_method,
    )


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

    Step ``t`` (counted across epochs) includes image ``i`` when its own uniform for
    ``(t, "poisson")`` is below q, and draws its views and group id from its own stream at ``t``,
    so which other images are present never changes image ``i``'s draws. An empty batch still
    takes a step (noise-only under DP).
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
    ledger: PrivacyLedger | None,
    run_id: str,
    round: int = 1,
) -> LocalResult:
    """Train ``task`` on one site's ``data``; charge ``ledger`` first when privacy is on.

    Raises
    ------
    PrivacyError, BudgetExceededError, LedgerError
        Before any training, when the privacy of the run cannot be stated or afforded.
    """
    if cfg.privacy.unit == "person":
        data = with_persons(data, cfg.data)
    units = unit_count(data, cfg.privacy.unit)
    schedule = make_schedule(
        units, cfg.train.batch_size, cfg.train.local_epochs, cfg.data.public_size
    )
    if not schedule.size_is_public and cfg.privacy.enabled:
        log.warning(
            "data.public_size is not declared: q = B/n uses the exact n, so ε is a function of "
            "private data and stays at the site; declare data.public_size (e.g. n rounded "
            "down to a bucket) to report it"
        )
    apply_trainable(task, cfg.privacy.trainable)
    plan = plan_units(task, cfg.task, cfg.train.batch_size, cfg.privacy.unit)
    sigma: float | None = None
    if cfg.privacy.enabled:
        if ledger is None:
            raise ValueError("privacy is on but no ledger was given; every DP training is charged")
        ledger.require_unit(cfg.privacy.unit)
        check_private_setup(task, plan, delta=cfg.privacy.delta, n=units)
        sigma = choose_noise(cfg, ledger, schedule, run_id)
        assert plan.sensitivity is not None
        ledger.charge(
            run_id=run_id,
            round=round,
            noise_multiplier=sigma,
            sample_rate=schedule.sample_rate,
            steps=schedule.steps,
            sensitivity=plan.sensitivity,
        )
    step = build_step(task, cfg, plan, sigma)
    sampler = sampler_for(cfg, data, plan, schedule, round)
    sums, seen = run_steps(task, data, cfg, step, plan, schedule, sampler)
    losses = {k: v / max(seen, 1) for k, v in sums.items()}
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError(f"training diverged (losses {losses}); lower train.lr")
    encoder_state = {k: v.detach().clone() for k, v in task.model.encoder.state_dict().items()}
    epsilon = ledger.epsilon() if (ledger is not None and sigma is not None) else None
    log.info(
        "trained %d steps on %d images: losses %s, ε=%s", schedule.steps, len(data), losses, epsilon
    )
    return LocalResult(
        encoder_state,
        len(data),
        losses,
        epsilon,
        sigma,
        schedule.steps,
        plan,
        schedule.size_is_public,
    )
