"""DP-FedSGD at one site: the clipped per-unit gradients of one Poisson sample, and their sum.

In DP-FedSGD (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent
Language Models", ICLR 2018, arXiv 1710.06963, with example-level units) every round is *one*
gradient step of the global model: each site draws a Poisson sample of its units at the public
rate ``q``, computes every unit's gradient at the current global weights, clips it to ``C`` and
contributes the sum. The server adds the sites' sums (under secure aggregation) and applies one
optimizer step with the summed gradient divided by the expected total batch size (public). The
released per-round sum is then exactly one subsampled mechanism over the union of the sites'
units, which is what the accountants analyse.

Two ways to noise the sum: ``local`` (:func:`local_noisy_sum`), each site adds the full
Gaussian noise N(0, (σ·s·C)²) to its own sum (s = sensitivity in units of C); ``distributed``,
the rows go to :func:`ssl_fed.privacy.distributed.codec.encode_units`, which rounds each unit and
adds the site's Skellam share.

Notes
-----
Guarantee of one round: one image changes its site's sum of clipped unit gradients by at most
``s·C`` in L2 (one unit, or one group's clipped gradient replaced by another for group-wise
clipping), and is included with probability ``q``, independently, drawn from its own secret
stream (:mod:`ssl_fed.train.randomness`). No local noise is added in distributed mode: the
guarantee then rests on secure aggregation and on ``min_noisy_sites`` honest shares.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, form_units, gather_units
from ssl_fed.train.randomness import UnitStreams


def trainable_dim(task: PretextTask) -> int:
    """Return the number of trained coordinates (the length of one unit's flattened gradient)."""
    return sum(p.numel() for _, p in task.trainable_named_parameters())


def sample_units(
    task: PretextTask,
    data: ImageDataset,
    plan: UnitPlan,
    streams: UnitStreams,
    *,
    step: int,
    sample_rate: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the units ``[G, M, V, ...]`` and mask ``[G, M]`` of one Poisson sample.

    Image ``i`` joins the sample when its own uniform for ``(step, "poisson")`` is below
    ``sample_rate``; its views and group id come from its own stream at ``step``.
    """
    index = streams.poisson_batch(step, sample_rate)
    draws = streams.at(step, index)
    views = task.make_views(data.images[torch.from_numpy(index)], draws)
    unit_index, mask = form_units(len(index), plan, draws)
    if len(index) == 0:
        return torch.zeros(0, 1, *views.shape[1:]), mask
    return gather_units(views, unit_index), mask


def clipped_rows(
    task: PretextTask,
    units: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    chunk_size: int | None = None,
    losses: dict[str, float] | None = None,
) -> NDArray[np.float64]:
    """Return ``[G, d]``: each unit's flattened gradient at the current weights, clipped to C.

    Each unit's gradient is computed on that unit alone (:func:`per_unit_gradients`), so units
    of several sites may share one call without influencing each other. ``losses``, if given,
    receives the sample's mean loss terms per image (unclipped: a site-local record only).
    """
    named = dict(task.trainable_named_parameters())
    if units.shape[0] == 0:
        return np.zeros((0, trainable_dim(task)))
    params = {n: p.detach() for n, p in named.items()}
    grads, terms = per_unit_gradients(task, params, units, mask, chunk_size)
    if losses is not None:
        images = max(float(mask.sum()), 1.0)
        losses.update({k: float(v.sum()) / images for k, v in terms.items()})
    rows = torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in named], dim=1).double()
    norms = rows.norm(dim=1, keepdim=True)
    rows = rows * torch.clamp(clip / (norms + 1e-12), max=1.0)
    return np.asarray(rows.numpy(), dtype=np.float64)


def local_noisy_sum(
    rows: NDArray[np.float64], *, noise_multiplier: float, sensitivity: float, clip: float
) -> NDArray[np.float64]:
    """Local mode: the site's clipped sum plus its full Gaussian noise (OS-entropy generator)."""
    rng = np.random.default_rng(secrets.randbits(128))
    std = noise_multiplier * sensitivity * clip
    total = rows.sum(axis=0) if rows.shape[0] else np.zeros(rows.shape[1])
    return np.asarray(total + rng.normal(0.0, std, total.shape), dtype=np.float64)


def expected_total_batch(sample_rate: float, public_sizes: list[int]) -> float:
    """Return the public normalizer of the server step: ``q · Σ N_i`` (declared sizes)."""
    total = sample_rate * sum(public_sizes)
    if not (math.isfinite(total) and total > 0):
        raise ValueError("the expected total batch must be positive; check q and the sizes")
    return total
