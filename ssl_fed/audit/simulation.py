"""Simulation audit mode: canaries at one site of a few-site federation; the server's view only.

``ssl-fed audit --mode simulation [overrides]`` runs ``sim.rounds`` rounds of a federation of
``sim.num_sites`` simulated sites in-process (:mod:`ssl_fed.audit.federation`: the real site
round, the real SecAgg+, no Flower, no Ray). Site 0 holds ``m`` white-box gradient canaries
(:class:`~ssl_fed.audit.canaries.DiracCanaries`), each included with probability 1/2; an
included canary is one more unit of that site, Poisson-sampled at the site's public rate q in
every step (``privacy.noise=local``) or round (``distributed``), clipped and noised like every
unit, through the engine's seam :attr:`~ssl_fed.privacy.mechanism.PrivacyEngine.extra_units`.

The adversary is the honest-but-curious server under SecAgg (Steinke, Nasr & Jagielski, arXiv
2305.08846, §6, with the aggregate as the observed output): it sees each round's released
aggregate and nothing per step or per site. Scores:

- ``local``: the decoded mean delta of each round. A canary's gradient ``+s_i C e_j`` moves the
  site's weights by ``-lr ...`` along ``e_j``, so the score is ``-s_i · Σ_r mean_r[j]``
  (the inner product of the canary direction with the aggregate delta, summed over rounds).
- ``distributed`` (DP-FedSGD, one step per round): the decoded sum of clipped gradients plus the
  Skellam noise of every site's share; ``s_i · sum_r[j] / C`` is ``N(1, s²)`` w.p. q when the
  canary is in, ``N(0, s²)`` otherwise, ``s`` the aggregate noise std over C, scored by the
  subsampled-Gaussian likelihood ratio summed over rounds
  (:func:`~ssl_fed.audit.canaries.likelihood_ratio_scores`; group plans: group canaries,
  :func:`~ssl_fed.audit.canaries.group_pair_scores`).

Notes
-----
Guarantee tested: the canary site's ledger ε (whole history at its δ) bounds what any function of
the released aggregates reveals about one of its units; ε_lower > ε is evidence, at confidence
1 - β, that the mechanism leaks more than it claims. Other sites' updates only add interference,
so ε_lower here is at most what the single-site white-box audit (:mod:`ssl_fed.audit.run`) shows;
with noise removed (the self-test) the canaries stand out and the audit flags it. Canaries are
units: they never change the site's declared size, q, σ or its ledger entries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import torch

from ssl_fed.audit.canaries import (
    DiracCanaries,
    group_pair_scores,
    likelihood_ratio_scores,
    make_dirac_canaries,
)
from ssl_fed.audit.federation import AuditFederation, make_federation
from ssl_fed.audit.guess import score_audit
from ssl_fed.audit.run import CANARY_SCALE, AuditResult, draw_coins, probe_unit
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.privacy.distributed_engine import SkellamEngine
from ssl_fed.privacy.engine import PrivacyEngine
from ssl_fed.site import node
from ssl_fed.site.rounds import site_ledger
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd_public import federated_name, public_task

CANARY_SITE = 0
"""The site that holds the canaries (a simulated partition like any other)."""


def _secret_generator() -> torch.Generator:
    return torch.Generator().manual_seed(secrets.randbits(63))


@dataclass
class CanarySource:
    """The included canaries of one site, drawn into each step (or round) at the site's q.

    Called by the step (:attr:`~ssl_fed.privacy.mechanism.PrivacyEngine.extra_units`): each
    included canary joins with probability q, independently, like every unit. ``paired``: a
    group canary adds two rows (a 2C shift, the worst-case neighbour of a group-clipped step).
    """

    dirac: DiracCanaries
    shapes: dict[str, torch.Size]
    coins: torch.Tensor
    gen: torch.Generator
    paired: bool
    sample_rate: float = 0.0
    noise_multiplier: float = 0.0
    steps: int = 0

    def __call__(self) -> dict[str, torch.Tensor]:
        """Return this step's canary rows ``{name: [k, *shape]}``."""
        draw = torch.rand(self.dirac.m, generator=self.gen) < self.sample_rate
        which = torch.nonzero(self.coins & draw).squeeze(1)
        if self.paired:
            which = torch.cat([which, which])
        return self.dirac.rows(self.shapes, which)

    def attach(self, engine: PrivacyEngine) -> None:
        """Read the engine's public q and σ and hand it the canaries (the site round's seam)."""
        if isinstance(engine, SkellamEngine):
            assert engine.public is not None, "the site binds its distributed engine first"
            self.sample_rate, self.steps = engine.public.sample_rate, 1
        else:
            self.sample_rate, self.steps = engine.schedule.sample_rate, engine.schedule.steps
        self.noise_multiplier = float(engine.noise_multiplier() or 0.0)
        engine.extra_units = self


def plant_canaries(
    fed: AuditFederation, m: int, gen: torch.Generator
) -> tuple[CanarySource, float, float]:
    """Draw ``m`` canaries on the federated trained coordinates; return them, sensitivity, probe.

    A canary on a coordinate the server never sees (a local head, a frozen parameter) would be
    invisible by construction, so only trained parameters that are federated are used.
    """
    cfg = node.site_config(fed.cfg, fed.infos[CANARY_SITE])
    task = public_task(cfg, fed.channels)
    plan = plan_units(task, cfg.task, cfg.train.batch_size, cfg.privacy.unit)
    if plan.sensitivity is None:
        raise ConfigError(f"task {cfg.task.name} has no stated sensitivity; nothing to audit")
    shapes = {n: p.shape for n, p in task.trainable_named_parameters()}
    sent = {s.name for s in fed.specs}
    seen = {n: s for n, s in shapes.items() if federated_name(n) in sent}
    scale = CANARY_SCALE * cfg.privacy.max_grad_norm
    dirac = make_dirac_canaries(seen, m, scale=scale, generator=gen)
    paired = plan.kind in ("group", "person-group")
    source = CanarySource(dirac, shapes, draw_coins(m, gen), gen, paired)
    data = node.site_data(cfg, fed.infos[CANARY_SITE])
    return source, plan.sensitivity, probe_unit(task, data, plan, cfg)


def observe(fed: AuditFederation, source: CanarySource) -> torch.Tensor:
    """Run every round with the canaries at :data:`CANARY_SITE`; ``[rounds, m]`` readings.

    Each reading is the canary's signed coordinate of the released aggregate: the mean delta
    (local noise) or the decoded gradient sum in units of C (distributed noise).
    """
    dirac = source.dirac
    readings = []
    for rnd in range(1, fed.cfg.sim.rounds + 1):
        released = fed.run_round(rnd, {CANARY_SITE: source.attach})
        view = {n: torch.from_numpy(released[federated_name(n)]) for n in set(dirac.names)}
        readings.append(dirac.read(view))
    observed = torch.stack(readings)
    if fed.distributed:
        return observed / fed.cfg.privacy.max_grad_norm
    return observed


def simulation_scores(
    fed: AuditFederation, source: CanarySource, observed: torch.Tensor
) -> torch.Tensor:
    """Score each canary on what the server saw (module docstring)."""
    if not fed.distributed:
        return -observed.sum(dim=0)
    p = fed.public().plan.ddp
    assert p is not None
    std = p.noise_std(len(fed.infos)) / fed.cfg.privacy.max_grad_norm
    score = group_pair_scores if source.paired else likelihood_ratio_scores
    return score(observed, sample_rate=source.sample_rate, noise_std=std)


def audit_simulation(
    cfg: RootConfig, *, kind: str, canaries: int, beta: float, out: Path, run_id: str
) -> AuditResult:
    """Audit a few-site federation from the server's view; ε is the canary site's ledger's.

    Raises
    ------
    ConfigError
        For a black-box audit, person units, or fewer than 3 sites (SecAgg+ needs 3).
    """
    if kind != "white-box":
        raise ConfigError("--mode simulation audits white-box canaries; use --kind white-box")
    if cfg.privacy.unit == "person":
        raise ConfigError("--mode simulation audits image units; audit persons with --mode local")
    if cfg.sim.num_sites < 3:
        raise ConfigError(f"sim.num_sites={cfg.sim.num_sites}: SecAgg+ needs at least 3 sites")
    fed = make_federation(cfg, out, run_id)
    source, sensitivity, measured = plant_canaries(fed, canaries, _secret_generator())
    observed = observe(fed, source)
    scores = simulation_scores(fed, source, observed)
    outcome = score_audit(scores, source.coins, delta=cfg.privacy.delta, beta=beta)
    ledger = site_ledger(cfg, fed.infos[CANARY_SITE])
    assert ledger is not None, "a DP site charges a ledger"
    mode = "distributed" if fed.distributed else "simulation"
    return AuditResult(
        f"white-box/{mode}",
        outcome,
        ledger.epsilon(),
        source.noise_multiplier,
        source.sample_rate,
        source.steps * cfg.sim.rounds,
        sensitivity,
        measured,
    )
