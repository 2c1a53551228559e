"""LIE ("A Little Is Enough"): a small, coordinated shift that hides inside the honest spread.

Baruch, Baruch & Goldberg, "A Little Is Enough: Circumventing Defenses For Distributed Learning",
NeurIPS 2019 (arXiv 1902.06156), Algorithm 1. The ``m`` colluding sites estimate the mean ``μ``
and standard deviation ``σ`` of the honest updates, per coordinate, from their own honest
updates, and all submit ``μ - z σ``. ``z`` is the largest shift that a majority-based defense
still accepts: with ``n`` sites, ``s = floor(n/2 + 1) - m`` honest sites must be "further from
the mean" than the attackers, so ``z = Φ^{-1}((n - s) / n)`` (their §3).

Notes
-----
When the colluders alone reach the majority (``s <= 0``) the formula gives ``z = ∞``; ``s`` is
then taken as 1, the largest finite ``z`` of the formula. The attack needs at least two known
honest updates: with one, ``σ = 0`` and it submits ``μ``, its own honest update. The direction
``-σ`` (against the mean) is the paper's choice for an untargeted attack.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Vector = NDArray[np.float64]


def lie_z(num_sites: int, num_attackers: int) -> float:
    """Return the paper's ``z_max = Φ^{-1}((n - s)/n)``, ``s = floor(n/2 + 1) - m``."""
    if not 1 <= num_attackers <= num_sites:
        raise ValueError(f"need 1 <= attackers ({num_attackers}) <= sites ({num_sites})")
    s = max(1, math.floor(num_sites / 2 + 1) - num_attackers)
    return float(stats.norm.ppf((num_sites - s) / num_sites))


def lie(known: list[Vector], z: float) -> Vector:
    """Submit ``μ - z σ`` over the ``known`` honest updates (population σ, per coordinate)."""
    if not known:
        raise ValueError("LIE needs at least one known honest update")
    stack = np.stack([np.asarray(k, np.float64) for k in known])
    result: Vector = stack.mean(axis=0) - z * stack.std(axis=0)
    return result
