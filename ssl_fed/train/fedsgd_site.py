"""A site's distributed-noise contribution to one DP-FedSGD round, charged to its ledger first.

This is the site-side seam the Flower train handler calls in ``privacy.noise=distributed``
mode: check and charge the round to the site's ledger (a Skellam entry that records the
mechanism, the aggregate noise multiplier, the sensitivity, the sample rate, one step, the bits,
γ and ``min_noisy_sites``), draw the round's Poisson sample, compute the clipped unit gradients
at the received global weights (:mod:`ssl_fed.train.fedsgd`) and encode them with the site's
noise share into the integers SecAgg+ sums modulo ``2^b``
(:mod:`ssl_fed.privacy.distributed.codec`). :func:`round_metrics` is what the server logs.

Notes
-----
Guarantee: the ledger is charged *before* any gradient is computed, with the Skellam step the
released sum realises when at least ``min_noisy_sites`` honest sites add their share; a round the
ledger cannot afford raises :class:`~ssl_fed.privacy.ledger.BudgetExceededError` and nothing is
computed or sent. σ and the codec parameters are public and must be identical at every site
(the server derives them from the run config; a site whose policy refuses them declines).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.params import DDPParams
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan
from ssl_fed.train.fedsgd import clipped_rows, sample_units
from ssl_fed.train.randomness import UnitStreams


def ledger_terms(params: DDPParams) -> dict[str, float]:
    """Return what a distributed-noise ledger entry records beside σ, q and the steps."""
    return {
        "l2_sensitivity": params.l2_sensitivity,
        "l1_sensitivity": params.l1_sensitivity,
        "bits": float(params.bits),
        "gamma": params.gamma,
        "min_noisy_sites": float(params.min_noisy_sites),
    }


def contribute(
    task: PretextTask,
    data: ImageDataset,
    units: UnitPlan,
    streams: UnitStreams,
    *,
    ledger: PrivacyLedger,
    run_id: str,
    rnd: int,
    sample_rate: float,
    params: DDPParams,
    seed: int,
    columns: NDArray[np.int64] | None = None,
    losses: dict[str, float] | None = None,
    extra: Callable[[], dict[str, torch.Tensor]] | None = None,
) -> NDArray[np.int64]:
    """Charge the round, then return the site's noisy integer vector (length ``d'``).

    ``columns`` selects the encoded coordinates of every clipped row (the federated trained
    parameters, :func:`ssl_fed.train.fedsgd_public.column_index`); dropping coordinates after
    clipping only lowers a row's norm, so the clip bound still holds. ``losses`` receives the
    sample's mean loss terms (site-local, never sent). ``extra``: the audit's canary rows
    (:attr:`~ssl_fed.privacy.mechanism.PrivacyEngine.extra_units`), clipped and encoded like
    every unit; ``None`` in training.
    """
    ledger.charge(
        run_id=run_id,
        round=rnd,
        noise_multiplier=params.noise_multiplier,
        sample_rate=sample_rate,
        steps=1,
        sensitivity=float(params.sensitivity_factor),
        ddp=ledger_terms(params),
    )
    views, mask = sample_units(task, data, units, streams, step=0, sample_rate=sample_rate)
    rows = clipped_rows(task, views, mask, params.clip, losses=losses)
    if extra is not None:
        rows = np.concatenate([rows, _clip_extra(task, extra(), params.clip)])
    if columns is not None:
        rows = rows[:, columns]
    return codec.encode_units(rows, params, seed)


def _clip_extra(
    task: PretextTask, rows: dict[str, torch.Tensor], clip: float
) -> NDArray[np.float64]:
    """Flatten extra gradient rows in the trained parameters' order and clip each to ``clip``."""
    names = [n for n, _ in task.trainable_named_parameters()]
    flat = torch.cat([rows[n].reshape(rows[n].shape[0], -1) for n in names], dim=1).double()
    flat = flat * torch.clamp(clip / (flat.norm(dim=1, keepdim=True) + 1e-12), max=1.0)
    return np.asarray(flat.numpy(), dtype=np.float64)


def round_metrics(params: DDPParams, survivors: int) -> dict[str, float]:
    """metrics.json / TensorBoard scalars of a distributed round with ``survivors`` sites."""
    return {
        "privacy/noise_std_aggregate": params.noise_std(survivors),
        "secagg/bits": float(params.bits),
        "secagg/wrap_margin_sd": params.wrap_margin_sd(survivors),
        "secagg/gamma": params.gamma,
    }


def local_round_metrics(
    noise_multiplier: float, sensitivity: float, clip: float, sites: int
) -> dict[str, float]:
    """Return the noise scalar of a local-noise round: K sites each add N(0, (σ s C)²)."""
    return {"privacy/noise_std_aggregate": (sites**0.5) * noise_multiplier * sensitivity * clip}
