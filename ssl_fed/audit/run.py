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

Person units (``privacy.unit=person``, issue 17): the units are persons. A white-box canary is
one more person whose ``privacy.max_images_per_person`` image rows are summed into one unit
before the clip, the public size is ``persons + m``, the real persons come from the training's
own person sampler, and the sensitivity probe removes whole persons. A black-box canary is a
person of that many out-of-distribution images, scored by their mean loss. So ε_lower is a lower
bound on the per-person ε the ledger reports.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial

import torch

from ssl_fed.audit.canaries import (
    DiracCanaries,
    group_pair_scores,
    likelihood_ratio_scores,
    make_dirac_canaries,
    person_input_canaries,
    person_scores,
    rotation_loss_scores,
)
from ssl_fed.audit.guess import AuditOutcome, score_audit
from ssl_fed.audit.sensitivity import exceeds, probe
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import with_persons
from ssl_fed.privacy.dpsgd import DPSGDStep, PrivacyError
from ssl_fed.privacy.engine import build_engine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.schedule import Schedule, make_schedule
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, gather_units, plan_units
from ssl_fed.train.local import apply_trainable, make_optimizer, train_local
from ssl_fed.train.sampling import make_sampler, unit_count

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


def canary_images(cfg: RootConfig) -> int:
    """Images per canary: 1, or the public cap for a canary *person* (the largest it may use)."""
    return cfg.privacy.max_images_per_person if cfg.privacy.unit == "person" else 1


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

    The real units come from the training's own sampler (:func:`~ssl_fed.train.sampling.
    make_sampler`: Poisson over images, or over persons with their capped image subsets).
    ``paired``: group canaries (:func:`~ssl_fed.audit.canaries.group_pair_scores`), the
    worst-case neighbour when the unit is a group of images (or of persons).

    Each step, every included canary joins the step's units with probability q (Poisson, like
    every unit); a canary person's image rows are summed into its one unit
    (:meth:`~ssl_fed.audit.canaries.DiracCanaries.rows`). The adversary's view is each released
    noisy sum (``p.grad`` after Opacus adds the noise, times the public expected batch size),
    read at the canaries' coordinates in units of C: ``[steps, m]``.
    """
    task = step.task
    shapes = {n: p.shape for n, p in step.named.items()}
    per_sum = cfg.train.batch_size / cfg.privacy.max_grad_norm
    released: list[torch.Tensor] = []

    def observe(optimizer: object) -> None:
        grads = {n: p.grad for n, p in step.named.items() if p.grad is not None}
        released.append(dirac.read(grads) * per_sum)

    step.optimizer.step_hook = observe
    key = bytes(torch.randint(0, 256, (32,), generator=gen).tolist())
    cap = cfg.privacy.max_images_per_person
    sampler = make_sampler(key, data, plan, schedule.sample_rate, cap)
    task.train()
    for t in range(schedule.steps):
        index, draws, unit_index, mask = sampler.batch(t)
        draw = torch.rand(dirac.m, generator=gen) < schedule.sample_rate
        which = torch.nonzero(coins & draw).squeeze(1)
        if paired:  # a group canary moves its group by 2C: two unit rows of +C each
            which = torch.cat([which, which])
        step.extra_units = partial(dirac.rows, shapes, which, canary_images(cfg))
        views = task.make_views(data.images[torch.from_numpy(index)], draws)
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
    """Train ``task`` on ``data`` plus ``canaries`` gradient canaries; audit every noisy step.

    Under ``privacy.unit=person`` the site's persons are the units, each canary is one more
    person (of ``privacy.max_images_per_person`` image rows), and ε is per person.
    """
    gen = _secret_generator()
    if cfg.privacy.unit == "person":
        data = with_persons(data, cfg.data)
    public_n = unit_count(data, cfg.privacy.unit) + canaries
    schedule = make_schedule(public_n, cfg.train.batch_size, cfg.train.local_epochs, public_n)
    engine = build_engine(cfg, ledger, schedule, n=public_n, run_id=run_id)
    apply_trainable(task, cfg.privacy.trainable)
    plan = plan_units(task, cfg.task, cfg.train.batch_size, cfg.privacy.unit)
    step = engine.make_private(task, make_optimizer(task, cfg), plan, round=1)
    if not isinstance(step, DPSGDStep):
        raise PrivacyError("the audit tests a DP training: set privacy=dpsgd")
    sigma, sensitivity = engine.noise_multiplier(), plan.sensitivity
    assert sigma is not None and sensitivity is not None
    measured = probe_unit(task, data, plan, cfg)
    shapes = {n: p.shape for n, p in step.named.items()}
    scale = CANARY_SCALE * cfg.privacy.max_grad_norm
    dirac = make_dirac_canaries(shapes, canaries, scale=scale, generator=gen)
    coins = draw_coins(canaries, gen)
    paired = plan.kind in ("group", "person-group")
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


def probe_unit(task: PretextTask, data: ImageDataset, plan: UnitPlan, cfg: RootConfig) -> float:
    """Run the sensitivity probe per privacy unit (image, or whole person)."""
    if cfg.privacy.unit == "person":
        data = with_persons(data, cfg.data)
    cap = cfg.privacy.max_images_per_person
    return probe(task, data, plan, cfg.privacy.max_grad_norm, _probe_generator(), cap)


def with_input_canaries(
    data: ImageDataset, cfg: RootConfig, canaries: int, gen: torch.Generator
) -> tuple[ImageDataset, torch.Tensor, torch.Tensor]:
    """Add the included input canaries to ``data`` (images, or persons of the cap's images).

    Returns the audited data set, every canary's images ``[m * k, ...]`` and the coins ``[m]``.
    """
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    k = canary_images(cfg)
    person = cfg.privacy.unit == "person"
    if person:
        data = with_persons(data, cfg.data)
    images, ids = person_input_canaries(
        canaries, k, image_size=data.image_size, channels=data.channels, seed=seed
    )
    coins = draw_coins(canaries, gen)
    keep = coins.repeat_interleave(k)
    persons = None
    if person:
        assert data.persons is not None
        persons = data.persons + tuple(
            i for i, kept in zip(ids, keep.tolist(), strict=True) if kept
        )
    included = torch.cat([data.images, images[keep]])
    source = f"{data.source} + {int(coins.sum())} canaries"
    return ImageDataset(included, None, source, persons), images, coins


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
    audited, images, coins = with_input_canaries(data, cfg, canaries, gen)
    result = train_local(task, audited, cfg, ledger=ledger, run_id=run_id)
    assert result.noise_multiplier is not None and result.plan.sensitivity is not None
    scores = person_scores(rotation_loss_scores(task, images), canary_images(cfg))
    outcome = score_audit(scores, coins, delta=cfg.privacy.delta, beta=beta)
    units = unit_count(audited, cfg.privacy.unit)
    return AuditResult(
        "black-box",
        outcome,
        ledger.epsilon(),
        result.noise_multiplier,
        min(1.0, cfg.train.batch_size / units),
        result.steps,
        result.plan.sensitivity,
        probe_unit(task, data, result.plan, cfg),
    )


AUDITS = {"white-box": audit_white_box, "black-box": audit_black_box}
"""The audit kinds, by name: the single source of truth for the CLI and the benchmark."""
