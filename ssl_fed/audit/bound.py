"""From correct guesses to a lower bound on ε: the one-run audit's hypothesis test.

Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run" (NeurIPS 2023, arXiv
2305.08846). ``m`` canaries are each included independently with probability 1/2 (a secret coin
per canary); the auditor sees the training's output, guesses "in" or "out" for ``r`` of them and
abstains on the rest; ``v`` of its guesses are right. If the training were (ε, δ)-DP, the number
of correct guesses would be stochastically dominated as in their Theorem 5.2:

    P[W >= v] <= f(v) + 2 m δ · max_{i in 1..m} (f(v - i) - f(v)) / i,
    f(v) = P[Binomial(r, e^ε / (1 + e^ε)) >= v]

(for δ = 0 this is their Theorem 3.1: ``f(v)`` alone). The audit rejects "the training is
(ε, δ)-DP" at level β when that p-value is below β, and ε_lower is the largest ε so rejected
(their Algorithm 2 / Appendix D computes the same). Terms with ``i > v`` have numerator
``1 - f(v)`` and a larger denominator than ``i = v``, so the maximum runs over ``1..v``.

Notes
-----
Guarantee: with probability at least 1 - β over the canaries' coins and the training's own
randomness, a mechanism that really is (ε, δ)-DP yields ``ε_lower <= ε``. A run whose ε_lower
exceeds the accountant's ε is therefore evidence, at confidence 1 - β, of a privacy bug. The
bound is valid for any guessing rule that does not look at the coins, including abstention.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

_EPS_MAX = 100.0


def _check(m: int, r: int, v: int, delta: float) -> None:
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"delta={delta} must lie in [0, 1]")


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[at least ``v`` of ``r`` guesses correct] for an (ε, δ)-DP training (Theorem 5.2)."""
    _check(m, r, v, delta)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))
    if delta == 0.0 or v == 0:
        return min(1.0, tail)
    below = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ...
    ratio = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, tail + 2.0 * m * delta * ratio)


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float, beta: float) -> float:
    """Largest ε that the audit rejects at level ``beta`` (0 when it rejects none).

    Bisection on ε, keeping ``p_value(ε_low) < beta <= p_value(ε_high)``; the p-value grows with
    ε, so the result is accurate to 1e-6 and errs low (the safe direction for a lower bound).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta={beta} must lie in (0, 1) (confidence 1 - beta)")
    _check(m, r, v, delta)
    if p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < beta:
        low, high = high, 2.0 * high
        if high > _EPS_MAX:
            return low
    while high - low > 1e-6:
        mid = (low + high) / 2
        if p_value(m, r, v, mid, delta) < beta:
            low = mid
        else:
            high = mid
    return low


def epsilon_ceiling(m: int, *, delta: float, beta: float) -> float:
    """Return the most an audit with ``m`` canaries can show: all ``m`` guesses correct.

    Adding a correct guess never lowers the bound, so no guessing strategy on ``m`` canaries
    reaches a larger ε_lower at this ``delta`` and confidence ``1 - beta``.
    """
    return epsilon_lower_bound(m, m, m, delta=delta, beta=beta)
