"""Run one audited training at one site: canaries in, the real DP step, ε_lower beside ε.

White-box: the runner drives the public pieces of the training path itself
(:func:`~ssl_fed.privacy.schedule.make_schedule`, :func:`~ssl_fed.tasks.units.plan_units`, the
site's ledger and :class:`~ssl_fed.privacy.engine.DPSGDEngine`, which checks the setup, charges
the ledger and builds the DP step), because the canaries must enter as
units of each step and the adversary must see each released noisy sum. Black-box: the canary
images are appended to the site's data and :func:`~ssl_fed.train.local.train_local` runs
unchanged; only the final model is scored.

Notes
-----
What the audit checks. A white-box canary is one more unit of the site's data set: the public
size is ``n + m`` (every potential canary counted, so the coins stay secret), it is
Poisson-sampled at the same rate q as every image, its row is clipped to C and summed, and the
step adds the same noise. The ledger is charged exactly what a site of ``n + m`` images would be
charged. ε is read back from that ledger (the whole history at the site's δ), never typed in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial

import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from ssl_fed.audit.canaries import (
    DiracCanaries,
    group_pair_scores,
    input_canaries,
    likelihood_ratio_scores,
    make_dirac_canaries,
    rotation_loss_scores,
)
from ssl_fed.audit.guess import AuditOutcome, score_audit
from ssl_fed.audit.sensitivity import exceeds, probe_site
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.dpsgd import DPSGDStep, PrivacyError
from ssl_fed.privacy.engine import build_engine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.schedule import Schedule, make_schedule
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, form_units, gather_units, plan_units
from ssl_fed.train.local import apply_trainable, make_optimizer, train_local

CANARY_SCALE = 2.0
"""A white-box canary's raw gradient norm, in units of C: above C, so the step's clip acts."""


@dataclass(frozen=True)
class AuditResult:
    """One audited run: the audit's outcome and the accountant's claim for the same run."""

    kind: str
    outcome: AuditOutcome
    epsilon: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    sensitivity: float
    measured_sensitivity: float = 0.0

    @property
    def sensitivity_violation(self) -> bool:
        """True when one real image changes its unit's clipped gradient by more than declared."""
        return exceeds(self.measured_sensitivity, self.sensitivity)

    @property
    def violation(self) -> bool:
        """True when the audit proves more leakage than the accountant allows: a privacy bug.

        Either the canaries prove ε_lower > ε, or the sensitivity probe
        (:mod:`ssl_fed.audit.sensitivity`) measures a change above the declared sensitivity.
        """
        return self.outcome.epsilon_lower > self.epsilon or self.sensitivity_violation


def _secret_generator() -> torch.Generator:
    return torch.Generator().manual_seed(secrets.randbits(63))


def _probe_generator() -> torch.Generator:
    """Return the sensitivity probe's generator (nothing secret: it measures, it is not scored)."""
    return torch.Generator().manual_seed(0)


def draw_coins(m: int, generator: torch.Generator) -> torch.Tensor:
    """Each canary included independently with probability 1/2 (the secret kept for scoring)."""
    return torch.rand(m, generator=generator) < 0.5


def train_observed(
    step: DPSGDStep,
    data: ImageDataset,
    cfg: RootConfig,
    plan: UnitPlan,
    schedule: Schedule,
    dirac: DiracCanaries,
    coins: torch.Tensor,
    gen: torch.Generator,
    paired: bool = False,
) -> torch.Tensor:
    """Run the schedule with the included canaries as units; return what the adversary saw.

    ``paired``: group canaries (:func:`~ssl_fed.audit.canaries.group_pair_scores`), the
    worst-case neighbour when the unit is a group of images.

    Each step, every included canary joins the step's units with probability q (Poisson, like
    every image). The adversary's view is each released noisy sum (``p.grad`` after Opacus adds
    the noise, times the public expected batch size), read at the canaries' coordinates in units
    of C: ``[steps, m]``.
    """
    task = step.task
    shapes = {n: p.shape for n, p in step.named.items()}
    per_sum = cfg.train.batch_size / cfg.privacy.max_grad_norm
    released: list[torch.Tensor] = []

    def observe(optimizer: object) -> None:
        grads = {n: p.grad for n, p in step.named.items() if p.grad is not None}
        released.append(dirac.read(grads) * per_sum)

    step.optimizer.step_hook = observe
    task.train()
    for _ in range(schedule.epochs):
        sampler = UniformWithReplacementSampler(
            num_samples=len(data),
            sample_rate=schedule.sample_rate,
            generator=gen,
            steps=schedule.steps_per_epoch,
        )
        for batch in sampler:
            index = torch.as_tensor(batch, dtype=torch.long)
            draw = torch.rand(dirac.m, generator=gen) < schedule.sample_rate
            which = torch.nonzero(coins & draw).squeeze(1)
            if paired:  # a group canary moves its group by 2C: two unit rows of +C each
                which = torch.cat([which, which])
            step.extra_units = partial(dirac.rows, shapes, which)
            views = task.make_views(data.images[index])
            unit_index, mask = form_units(len(index), plan, gen)
            step(gather_units(views, unit_index), mask)
    step.extra_units = None
    return torch.stack(released)


def audit_white_box(
    task: PretextTask,
    data: ImageDataset,
    cfg: RootConfig,
    *,
    ledger: PrivacyLedger,
    run_id: str,
    canaries: int,
    beta: float,
) -> AuditResult:
    """Train ``task`` on ``data`` plus ``canaries`` gradient canaries; audit every noisy step."""
    gen = _secret_generator()
    public_n = len(data) + canaries
    schedule = make_schedule(public_n, cfg.train.batch_size, cfg.train.local_epochs, public_n)
    engine = build_engine(cfg, ledger, schedule, n=public_n, run_id=run_id)
    apply_trainable(task, cfg.privacy.trainable)
    plan = plan_units(task, cfg.task, cfg.train.batch_size)
    step = engine.make_private(task, make_optimizer(task, cfg), plan, round=1)
    if not isinstance(step, DPSGDStep):
        raise PrivacyError("the audit tests a DP training: set privacy=dpsgd")
    sigma, sensitivity = engine.noise_multiplier(), plan.sensitivity
    assert sigma is not None and sensitivity is not None
    measured = probe_site(task, data.images, plan, cfg.privacy.max_grad_norm, _probe_generator())
    shapes = {n: p.shape for n, p in step.named.items()}
    scale = CANARY_SCALE * cfg.privacy.max_grad_norm
    dirac = make_dirac_canaries(shapes, canaries, scale=scale, generator=gen)
    coins = draw_coins(canaries, gen)
    paired = plan.kind == "group"
    observed = train_observed(step, data, cfg, plan, schedule, dirac, coins, gen, paired)
    score = group_pair_scores if paired else likelihood_ratio_scores
    scores = score(observed, sample_rate=schedule.sample_rate, noise_std=sigma * sensitivity)
    outcome = score_audit(scores, coins, delta=cfg.privacy.delta, beta=beta)
    return AuditResult(
        "white-box",
        outcome,
        ledger.epsilon(),
        sigma,
        schedule.sample_rate,
        schedule.steps,
        sensitivity,
        measured,
    )


def audit_black_box(
    task: PretextTask,
    data: ImageDataset,
    cfg: RootConfig,
    *,
    ledger: PrivacyLedger,
    run_id: str,
    canaries: int,
    beta: float,
) -> AuditResult:
    """Append the included input canaries to ``data``, train unchanged, score the final model."""
    if "rotation" not in task.term_names():
        raise ConfigError(
            f"the black-box audit scores the rotation loss, which task={cfg.task.name} does not "
            "train; use task=rotation or task=joint, or --kind white-box"
        )
    gen = _secret_generator()
    images = input_canaries(
        canaries,
        image_size=data.image_size,
        channels=data.channels,
        seed=int(torch.randint(0, 2**31 - 1, (1,), generator=gen)),
    )
    coins = draw_coins(canaries, gen)
    included = torch.cat([data.images, images[coins]])
    audited = ImageDataset(included, None, f"{data.source} + {int(coins.sum())} canaries")
    result = train_local(task, audited, cfg, ledger=ledger, run_id=run_id)
    assert result.noise_multiplier is not None and result.plan.sensitivity is not None
    outcome = score_audit(
        rotation_loss_scores(task, images), coins, delta=cfg.privacy.delta, beta=beta
    )
    return AuditResult(
        "black-box",
        outcome,
        ledger.epsilon(),
        result.noise_multiplier,
        min(1.0, cfg.train.batch_size / len(audited)),
        result.steps,
        result.plan.sensitivity,
        probe_site(task, data.images, result.plan, cfg.privacy.max_grad_norm, _probe_generator()),
    )


AUDITS = {"white-box": audit_white_box, "black-box": audit_black_box}
"""The audit kinds, by name: the single source of truth for the CLI and the benchmark."""
