"""Gaussian differential privacy (μ-GDP) and its exact (ε, δ) profile.

Dong, Roth & Su, "Gaussian Differential Privacy" (JRSS-B 2022, arXiv 1905.02383). A mechanism is
μ-GDP when telling any two neighbours apart is at least as hard as telling ``N(0, 1)`` from
``N(μ, 1)``: its tradeoff curve (smallest type II error at type I error α) is at least

    G_μ(α) = Φ(Φ⁻¹(1 - α) - μ)                                    (their Definition 2.4)

The Gaussian mechanism of sensitivity Δ and noise std s is exactly (Δ / s)-GDP (their
Theorem 2.7), and μ-GDP is (ε, δ(ε))-DP for every ε ≥ 0 with (their Corollary 2.13)

    δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2),

the same profile as Balle & Wang's analytic Gaussian mechanism (ICML 2018, arXiv 1805.06530,
Theorem 8). :func:`gaussian_mu` inverts it: the *largest* μ (so the least noise, σ = 1/μ for
sensitivity 1) that is still (ε, δ)-DP, the strongest Gaussian mechanism an ε admits.

Notes
-----
Guarantee: the functions are exact up to the stated bisection tolerances; ``gaussian_mu`` errs
low (the returned μ is (ε, δ)-DP) and ``gaussian_epsilon`` errs high (the returned ε is a valid
ε for that μ), so neither overstates what a mechanism at that μ may leak. δ(ε) is decreasing in
ε and increasing in μ, which the bisections rely on.
"""

from __future__ import annotations

import math

from scipy.special import ndtr, ndtri

_TOL = 1e-10


def gaussian_tradeoff(mu: float, alpha: float) -> float:
    """``G_μ(α)``: the smallest type II error of a test at type I error ``alpha``."""
    if alpha <= 0.0:
        return 1.0
    if alpha >= 1.0:
        return 0.0
    return float(ndtr(ndtri(1.0 - alpha) - mu))


def gaussian_delta(epsilon: float, mu: float) -> float:
    """δ at which a μ-GDP mechanism is (ε, δ)-DP (Dong, Roth & Su, Corollary 2.13)."""
    if mu < 0.0 or epsilon < 0.0:
        raise ValueError(f"need mu >= 0 and epsilon >= 0 (got mu={mu}, epsilon={epsilon})")
    if mu == 0.0:
        return 0.0
    head = float(ndtr(-epsilon / mu + mu / 2))
    # e^ε Φ(-ε/μ - μ/2) computed in log space: e^ε overflows long before the product does
    tail = float(ndtr(-epsilon / mu - mu / 2))
    tail = math.exp(epsilon + math.log(tail)) if tail > 0.0 else 0.0
    return max(0.0, head - tail)


def gaussian_epsilon(mu: float, delta: float) -> float:
    """Smallest ε with ``gaussian_delta(ε, mu) <= delta`` (0 when μ = 0); errs high by < 1e-10."""
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta} must lie in (0, 1)")
    if gaussian_delta(0.0, mu) <= delta:
        return 0.0
    low, high = 0.0, 1.0
    while gaussian_delta(high, mu) > delta:
        low, high = high, 2.0 * high
    while high - low > _TOL * max(1.0, high):
        mid = (low + high) / 2
        low, high = (mid, high) if gaussian_delta(mid, mu) > delta else (low, mid)
    return high


def gaussian_mu(epsilon: float, delta: float) -> float:
    """Largest μ whose Gaussian mechanism is (ε, δ)-DP: the analytic calibration (σ = 1/μ)."""
    if epsilon < 0.0 or not 0.0 < delta < 1.0:
        raise ValueError(f"need epsilon >= 0 and delta in (0, 1) (got {epsilon}, {delta})")
    low, high = 0.0, 1.0
    while gaussian_delta(epsilon, high) <= delta:
        low, high = high, 2.0 * high
    while high - low > _TOL * max(1.0, high):
        mid = (low + high) / 2
        low, high = (mid, high) if gaussian_delta(epsilon, mid) <= delta else (low, mid)
    return low
