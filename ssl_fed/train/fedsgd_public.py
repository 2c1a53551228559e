"""The public constants of a distributed-noise DP-FedSGD round in the Flower federation.

Server and sites derive them from the run config alone (nothing private enters). The server
sends its copy in the train config (for the record); a site always uses its own derivation, so a
server cannot lower a site's noise share by sending other values:

- **coordinates** (:func:`public_layout`): the federated arrays that are trained parameters
  (``privacy.trainable``, and the task's heads only with ``aggregation.share_heads``), in the
  federated order; the gradient a site encodes is the concatenation of exactly these;
- **sample rate** ``q = train.batch_size / data.public_size`` (a run-level declared size; every
  site samples each of its units with this one probability, whatever its real size);
- **σ and the codec** (:func:`public_plan`): σ calibrated with the Skellam accountant for
  ``sim.rounds`` one-step rounds at ``q`` to ``min(target_epsilon, epsilon_budget)``, the bits
  ``privacy.ddp_bits``, ``min_noisy_sites`` and a public bound on the units summed
  (``expected sites × (B + 8√B + 8)``, used only for the wrap headroom; a wrap is still detected
  and the round rejected);
- **expected total batch** of the server step: ``B × survivors`` (each site's expected sample
  is ``q · public_size = B``).

Notes
-----
Everything here is a function of public configuration; no privacy is spent. The guarantee of a
round is stated in :mod:`ssl_fed.train.fedsgd_site` and :mod:`ssl_fed.privacy.distributed.params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget
from ssl_fed.models import build_model
from ssl_fed.tasks import build_task
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, plan_units
from ssl_fed.train.fedsgd_federation import NoisePlan, plan_noise, round_seed


@dataclass(frozen=True)
class PublicRound:
    """The run's public DP-FedSGD constants (see the module docstring)."""

    layout: tuple[tuple[str, int], ...]
    """(federated array name, size) of every encoded coordinate block, in order."""
    sample_rate: float
    plan: NoisePlan
    units: UnitPlan

    @property
    def dim(self) -> int:
        """Number of encoded coordinates."""
        return sum(size for _, size in self.layout)

    def config(self, run_id: str, rnd: int) -> dict[str, float | int]:
        """Return the train-config entries of round ``rnd`` (what a site checks)."""
        p = self.plan.ddp
        assert p is not None
        return {
            "ddp-sigma": p.noise_multiplier,
            "ddp-bits": p.bits,
            "ddp-scale": p.scale,
            "ddp-min-noisy-sites": p.min_noisy_sites,
            "ddp-q": self.sample_rate,
            "ddp-seed": round_seed(run_id, rnd) & ((1 << 63) - 1),
        }


def sample_rate(cfg: RootConfig) -> float:
    """``q = train.batch_size / data.public_size`` (ConfigError when no size is declared)."""
    size = cfg.data.public_size
    if size is None or size < cfg.train.batch_size:
        raise ConfigError(
            f"privacy.noise=distributed needs data.public_size >= train.batch_size (got "
            f"{size}): the public sample rate q = batch_size / public_size is shared by all sites"
        )
    return cfg.train.batch_size / size


def public_task(cfg: RootConfig, channels: int) -> PretextTask:
    """Build a fresh task of the run's model with ``privacy.trainable`` applied."""
    from ssl_fed.train.local import apply_trainable

    model = build_model(cfg.encoder, channels)
    task = build_task(model, cfg.task, cfg.data.augment, cfg.data.image_size, channels)
    apply_trainable(task, cfg.privacy.trainable)
    return task


def federated_name(trainable_name: str) -> str:
    """``model.encoder.X`` -> ``encoder.X``; ``model.heads.h.X`` -> ``h.X`` (federated naming)."""
    name = trainable_name.removeprefix("model.")
    return name.removeprefix("heads.")


def public_layout(task: PretextTask, share_heads: bool) -> tuple[tuple[str, int], ...]:
    """(federated name, size) of the trained parameters that are federated, in trained order."""
    out = []
    for name, param in task.trainable_named_parameters():
        if name.startswith("model.heads.") and not share_heads:
            continue
        out.append((federated_name(name), param.numel()))
    return tuple(out)


def column_index(task: PretextTask, layout: tuple[tuple[str, int], ...]) -> NDArray[np.int64]:
    """Columns of :func:`~ssl_fed.train.fedsgd.clipped_rows` output that form the layout."""
    starts: dict[str, tuple[int, int]] = {}
    pos = 0
    for name, param in task.trainable_named_parameters():
        starts[federated_name(name)] = (pos, param.numel())
        pos += param.numel()
    parts = []
    for name, size in layout:
        if name not in starts or starts[name][1] != size:
            raise ValueError(f"layout entry {name} ({size}) is not a trained parameter here")
        begin = starts[name][0]
        parts.append(np.arange(begin, begin + size, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def public_round(cfg: RootConfig, channels: int) -> PublicRound:
    """Return the run's public constants (cached per config and channel count)."""
    key = f"{cfg!r}|{channels}"
    if key not in _CACHE:
        if len(_CACHE) >= 8:
            _CACHE.clear()
        _CACHE[key] = _public_round(cfg, channels)
    return _CACHE[key]


_CACHE: dict[str, PublicRound] = {}


def _public_round(cfg: RootConfig, channels: int) -> PublicRound:
    from ssl_fed.fed.secagg import expected_sites
    from ssl_fed.privacy.distributed.checks import expected_min_noisy_sites

    task = public_task(cfg, channels)
    batch = cfg.train.batch_size
    units = plan_units(task, cfg.task, batch, cfg.privacy.unit)
    if units.sensitivity is None:
        raise ConfigError(
            "privacy.noise=distributed needs per-unit clipping (image or group units); "
            f"task {cfg.task.name} with negatives={cfg.task.negatives} couples the whole batch"
        )
    layout = public_layout(task, cfg.aggregation.share_heads)
    q = sample_rate(cfg)
    sites = expected_sites(cfg)
    pr = cfg.privacy
    plan = plan_noise(
        "distributed",
        target_epsilon=min(pr.target_epsilon, epsilon_budget(pr)),
        delta=pr.delta,
        sample_rate=q,
        rounds=cfg.sim.rounds,
        sensitivity=float(units.sensitivity),
        clip=pr.max_grad_norm,
        dim=sum(s for _, s in layout),
        bits=pr.ddp_bits,
        num_sites=sites,
        min_noisy_sites=expected_min_noisy_sites(cfg),
        max_units=sites * (batch + math.ceil(8 * math.sqrt(batch)) + 8),
    )
    return PublicRound(layout, q, plan, units)
