"""An in-process DP-FedSGD federation (no Flower): the same round with local or distributed noise.

Every round: each site draws its Poisson sample at the public rate ``q`` and computes its clipped
unit gradients at the global weights (:mod:`ssl_fed.train.fedsgd`); then either each site adds
its full Gaussian noise to its sum (``local``), or each site rounds its units, adds a Skellam
share and the shares are summed by ssl-fed's SecAgg+ in modular mode, run in-process with the
same client and server code as the Flower path (:func:`ssl_fed.secagg.local.run_local_round`),
then decoded (``distributed``). The server divides the noisy sum by the expected total batch and
takes one optimizer step (:mod:`ssl_fed.train.server_opt`). Used by
``benchmarks/distributed_dp.py`` and the tests; the Flower path wires the same pieces.

Notes
-----
Per-site ε of ``rounds`` rounds is computed before training from the mechanism's own accountant:
Opacus RDP for the local Gaussian (σ per site), :mod:`ssl_fed.privacy.skellam` for the
distributed sum (σ of the aggregate, sensitivities inflated by rounding), both at rate ``q``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy import skellam
from ssl_fed.privacy.accounting import calibrate_noise, epsilon_for_history
from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.params import DDPParams, choose_scale
from ssl_fed.secagg import SecAggConfig
from ssl_fed.secagg.local import run_local_round
from ssl_fed.secagg.result import AggregateResult
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan
from ssl_fed.train.fedsgd import clipped_rows, local_noisy_sum, sample_units
from ssl_fed.train.randomness import UnitStreams, draw_run_key, unit_ids
from ssl_fed.train.server_opt import ServerOptimizer


@dataclass(frozen=True)
class NoisePlan:
    """σ, the ε it buys per site, and (distributed) the round's public codec parameters."""

    mode: str
    noise_multiplier: float
    epsilon: float
    sensitivity: float
    clip: float
    ddp: DDPParams | None = None

    def aggregate_std(self, num_sites: int) -> float:
        """Std per coordinate of the noise in the released sum (float units)."""
        if self.ddp is not None:
            return self.ddp.noise_std(num_sites)
        return math.sqrt(num_sites) * self.noise_multiplier * self.sensitivity * self.clip


def plan_noise(
    mode: str,
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    rounds: int,
    sensitivity: float,
    clip: float,
    dim: int,
    bits: int,
    num_sites: int,
    min_noisy_sites: int,
    max_units: int,
) -> NoisePlan:
    """Calibrate σ for ``rounds`` one-step rounds at rate ``q`` to ``target_epsilon`` per site."""
    sigma = calibrate_noise(
        target_epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=rounds
    )
    if mode == "local":
        eps = epsilon_for_history([(sigma, sample_rate, rounds)], delta)
        return NoisePlan(mode, sigma, eps, sensitivity, clip)

    def codec_for(s: float) -> DDPParams:
        return choose_scale(
            dim=dim,
            bits=bits,
            clip=clip,
            sensitivity_factor=int(sensitivity),
            noise_multiplier=s,
            min_noisy_sites=min_noisy_sites,
            max_units=max_units,
            num_sites=num_sites,
        )

    params = codec_for(sigma)
    for _ in range(4):  # γ depends on σ (headroom) and σ on γ (rounding): iterate to a fixpoint
        sigma = skellam.calibrate_skellam(
            target_epsilon=target_epsilon,
            delta=delta,
            sample_rate=sample_rate,
            steps=rounds,
            l2_sensitivity=params.l2_sensitivity,
            l1_sensitivity=params.l1_sensitivity,
        )
        again = codec_for(sigma)
        if again.scale == params.scale:
            break
        params = again
    params = codec_for(sigma)
    step = skellam.SkellamStep(
        sigma, sample_rate, rounds, params.l2_sensitivity, params.l1_sensitivity
    )
    eps = skellam.epsilon_for_history([step], delta)
    return NoisePlan(mode, sigma, eps, sensitivity, clip, params)


def round_seed(run_id: str, rnd: int) -> int:
    """Public per-round seed of the rotation (anyone may recompute it; it is not a secret)."""
    digest = hashlib.sha256(f"ssl-fed ddp rotation|{run_id}|{rnd}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def secure_noisy_sum(
    rows: Mapping[int, NDArray[np.float64]],
    noise: NoisePlan,
    seed: int,
    *,
    drop: Mapping[int, str] | None = None,
) -> tuple[NDArray[np.float64] | None, AggregateResult | str]:
    """Encode every site's rows with its Skellam share, sum them by SecAgg+, decode the sum.

    Returns ``(None, reason)`` when the round is skipped (too few survivors) or wrapped.
    """
    p = noise.ddp
    assert p is not None, "distributed noise needs its codec parameters"
    inputs = {i: ({"ddp": codec.encode_units(r, p, seed)}, 1.0) for i, r in rows.items()}
    cfg = SecAggConfig(
        modular_bits=p.bits, max_weight=1, fixed_weight=1, min_survivors=p.min_noisy_sites
    )
    res = run_local_round(inputs, [("ddp", (p.padded,))], cfg, drop=drop)
    if not isinstance(res, AggregateResult) or res.words is None:
        return None, getattr(res, "reason", "no aggregate")
    try:
        return codec.decode_sum(res.words, p, seed), res
    except codec.WrapError as err:
        return None, str(err)


@dataclass
class Federation:
    """Global task, the sites' data and the round's public constants (see the module docstring)."""

    task: PretextTask
    sites: list[ImageDataset]
    units: UnitPlan
    sample_rate: float
    noise: NoisePlan
    optimizer: ServerOptimizer
    run_id: str = "fedsgd"
    chunk_size: int | None = None

    def site_rows(self, rnd: int) -> dict[int, NDArray[np.float64]]:
        """Each site's clipped unit gradients of round ``rnd`` (secret per-image streams).

        The sites' units go through one per-unit gradient call (padded to a common width with
        mask 0), which computes exactly what one call per site would, with less overhead.
        """
        samples = []
        for data in self.sites:
            streams = UnitStreams(draw_run_key(True, 0, rnd), unit_ids(data.images))
            samples.append(
                sample_units(
                    self.task, data, self.units, streams, step=0, sample_rate=self.sample_rate
                )
            )
        width = max(m.shape[1] for _, m in samples)
        units = torch.cat([_pad(u, width) for u, _ in samples])
        mask = torch.cat([_pad(m, width) for _, m in samples])
        rows = clipped_rows(self.task, units, mask, self.noise.clip, self.chunk_size)
        bounds = np.cumsum([0] + [m.shape[0] for _, m in samples])
        return {i: rows[bounds[i] : bounds[i + 1]] for i in range(len(samples))}

    def run_round(self, rnd: int) -> dict[str, float | str]:
        """One DP-FedSGD round; returns its timings and what was skipped, if anything."""
        t0 = time.perf_counter()
        rows = self.site_rows(rnd)
        t1 = time.perf_counter()
        if self.noise.mode == "local":
            kw = {"noise_multiplier": self.noise.noise_multiplier, "clip": self.noise.clip}
            total: NDArray[np.float64] | None = np.sum(
                [
                    local_noisy_sum(r, sensitivity=self.noise.sensitivity, **kw)
                    for r in rows.values()
                ],
                axis=0,
            )
            why = ""
        else:
            total, res = secure_noisy_sum(rows, self.noise, round_seed(self.run_id, rnd))
            why = "" if isinstance(res, AggregateResult) else res
        t2 = time.perf_counter()
        if total is not None:
            self.optimizer.step(total)
        units = float(sum(r.shape[0] for r in rows.values()))
        return {"grad_s": t1 - t0, "aggregate_s": t2 - t1, "units": units, "skipped": why}


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad axis 1 (members per unit) to ``width``."""
    if t.shape[1] == width:
        return t
    pad = torch.zeros(t.shape[0], width - t.shape[1], *t.shape[2:], dtype=t.dtype)
    return torch.cat([t, pad], dim=1)
