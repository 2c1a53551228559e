"""Min-max and min-sum: the largest shift that stays as close to the honest updates as they are.

Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks and
Defenses for Federated Learning", NDSS 2021, §IV (AGR-agnostic attacks). Over the known honest
updates ``g_i`` with mean ``μ`` and a perturbation direction ``p`` (default ``-μ/||μ||``, their
"inverse unit vector"), the attacker submits ``μ + γ p`` with the largest ``γ`` such that

- **min-max**: ``max_i ||μ + γp - g_i|| <= max_{i,j} ||g_i - g_j||`` (no farther from any honest
  update than the two farthest honest updates are from each other);
- **min-sum**: ``Σ_i ||μ + γp - g_i||^2 <= max_i Σ_j ||g_i - g_j||^2``.

The paper finds ``γ`` by a halving search (its Algorithm 1); both constraints are quadratic in
``γ``, so here it is solved exactly. With ``a_i = μ - g_i``: ``||a_i + γp||^2 = R^2`` has the
largest root ``(-a_i·p + sqrt((a_i·p)^2 - |p|^2(|a_i|^2 - R^2))) / |p|^2``, and ``γ`` is the
smallest such root over ``i`` (each constraint holds on an interval containing 0, since ``μ`` lies
in the honest updates' convex hull). For min-sum ``Σ_i a_i = 0`` removes the linear term.

Notes
-----
With one known update both radii are 0 and ``γ = 0``: the attack submits the honest update.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]


def _stack(known: list[Vector]) -> NDArray[np.float64]:
    if not known:
        raise ValueError("min-max/min-sum need at least one known honest update")
    return np.stack([np.asarray(k, np.float64) for k in known])


def inverse_unit(mean: Vector) -> Vector:
    """Return the perturbation ``-μ / ||μ||`` (zero when ``μ`` is zero)."""
    norm = float(np.linalg.norm(mean))
    return np.zeros_like(mean) if norm == 0.0 else -mean / norm


def _pairwise_sq(g: NDArray[np.float64]) -> NDArray[np.float64]:
    sq = np.sum(g**2, axis=1)
    d: NDArray[np.float64] = np.maximum(sq[:, None] + sq[None, :] - 2.0 * g @ g.T, 0.0)
    return d


def _setup(
    known: list[Vector], direction: Vector | None
) -> tuple[NDArray[np.float64], Vector, Vector, float]:
    """Stack the known updates; return them, their mean ``μ``, the direction ``p`` and ``p·p``."""
    g = _stack(known)
    mu: Vector = g.mean(axis=0)
    p = inverse_unit(mu) if direction is None else np.asarray(direction, np.float64)
    return g, mu, p, float(p @ p)


def min_max(known: list[Vector], direction: Vector | None = None) -> Vector:
    """Submit ``μ + γp`` with the largest ``γ`` meeting the min-max constraint."""
    g, mu, p, pp = _setup(known, direction)
    if pp == 0.0:
        return mu
    radius_sq = float(_pairwise_sq(g).max())
    a = mu - g
    ap = a @ p
    disc = np.maximum(ap**2 - pp * (np.sum(a**2, axis=1) - radius_sq), 0.0)
    gamma = float(np.min((-ap + np.sqrt(disc)) / pp))
    result: Vector = mu + max(gamma, 0.0) * p
    return result


def min_sum(known: list[Vector], direction: Vector | None = None) -> Vector:
    """Submit ``μ + γp`` with the largest ``γ`` meeting the min-sum constraint."""
    g, mu, p, pp = _setup(known, direction)
    if pp == 0.0:
        return mu
    budget = float(_pairwise_sq(g).sum(axis=1).max()) - float(np.sum((mu - g) ** 2))
    gamma = float(np.sqrt(max(budget, 0.0) / (len(g) * pp)))
    result: Vector = mu + gamma * p
    return result
