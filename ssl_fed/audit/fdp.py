"""The f-DP reading of a one-run audit: the largest μ-GDP curve the guesses reject.

Mahloujifar, Melis & Chaudhuri, "Auditing f-Differential Privacy in One Run" (ICML 2025, arXiv
2410.22235). Same game as :mod:`ssl_fed.audit.bound` (m canaries, each in w.p. 1/2; ``r``
guesses, the rest abstentions; ``v`` correct), but the null hypothesis is "the training is f-DP"
for a whole tradeoff curve f instead of one (ε, δ) pair. Their analysis of the membership game
with abstention (k = 2 alternatives per canary) bounds the tail of the number of correct guesses
by a backward recursion over ``i = v-1, ..., 0`` on the probability mass of correct (``r_i``) and
wrong (``h_i``) guesses, started from the mass a tail of probability τ would carry:

    r_v = τ·v/m,   h_v = τ·(r - v)/m,
    h_i = max(h_{i+1}, f̄(r_{i+1})),   r_i = r_{i+1} + i/(r - i) · (h_i - h_{i+1}),
    f̄(x) = f(1 - x)                (for μ-GDP: Φ(Φ⁻¹(x) - μ))

If ``r_0 + h_0 > r/m`` (more guessing mass than ``r`` guesses on ``m`` canaries have), no f-DP
mechanism makes ``v`` or more of ``r`` guesses correct with probability τ, so f is rejected at
level τ. The recursion follows the authors' reference code (Meta's PrivacyGuard,
``privacy_guard/analysis/mia/fdp_analysis_node.py``, ``rh_with_cap`` / ``audit_rh_with_cap``;
the paper's body could not be read here, so its theorem numbers are not quoted). With the
pure ε-DP curve it gives Steinke et al.'s Theorem 3.1 ε exactly when every guess is right and
within 2 % otherwise (tested). On a Gaussian mechanism it reads more at large ε, where the
(ε, δ) test of 2305.08846 saturates: one full-batch Gaussian step at ε = 8, m = 1000 gives
ε_fdp ≈ 4.3 against ε_lower ≈ 2.6 (``benchmarks/audit_reach.py``).

Notes
-----
Guarantee (what ``mu_lower`` proves): with probability at least 1 - β over the canaries' coins
and the training's randomness, a training that is μ-GDP for canary inclusion yields
``mu_lower <= μ``. So ``mu_lower > 0`` shows, at confidence 1 - β, that *the released output is
not μ-GDP for any μ < mu_lower*. That is **not** the same as "not (ε, δ)-DP": a mechanism whose
true curve is not Gaussian (a subsampled Gaussian over many steps is not) can be (ε, δ)-DP at
the accountant's ε and still fail μ-GDP at the μ that (ε, δ) maps to. ``epsilon_fdp`` (the ε of
a mu_lower-GDP mechanism at the run's δ) is therefore a reported *estimate* beside ε_lower, never
a violation test; the ε-bound of :mod:`ssl_fed.audit.bound` stays the only one that drives the
audit's exit code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy.special import ndtr, ndtri

from ssl_fed.audit.gdp import gaussian_epsilon

Curve = Callable[[float], float]
"""``f̄(x) = f(1 - x)``: the least probability under one neighbour of an event of mass x under
the other."""

_MU_MAX = 50.0


def gaussian_family(mu: float) -> Curve:
    """``f̄`` of μ-GDP: ``x ↦ Φ(Φ⁻¹(x) - μ)`` (Dong, Roth & Su, Definition 2.4)."""

    def curve(x: float) -> float:
        return 1.0 if x >= 1.0 else 0.0 if x <= 0.0 else float(ndtr(ndtri(x) - mu))

    return curve


def pure_dp_family(epsilon: float) -> Curve:
    """``f̄`` of ε-DP: ``x ↦ max(0, e^-ε x, 1 - e^ε (1 - x))`` (Wasserman & Zhou)."""
    grow, shrink = math.exp(epsilon), math.exp(-epsilon)

    def curve(x: float) -> float:
        x = min(max(x, 0.0), 1.0)
        return max(0.0, shrink * x, 1.0 - grow * (1.0 - x))

    return curve


def _check(m: int, r: int, v: int, beta: float) -> None:
    if not 0 <= v <= r <= m or m < 1:
        raise ValueError(f"need 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m}), m >= 1")
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta={beta} must lie in (0, 1) (confidence 1 - beta)")


def rejects(m: int, r: int, v: int, curve: Curve, *, beta: float) -> bool:
    """Whether ``v`` correct of ``r`` guesses rejects "f-DP" at level ``beta`` (see module)."""
    _check(m, r, v, beta)
    if v == 0:
        return False
    correct, wrong, mass = beta * v / m, beta * (r - v) / m, r / m
    for i in range(v - 1, -1, -1):
        wrong_next = max(wrong, curve(correct))
        correct += i / (r - i) * (wrong_next - wrong)
        wrong = wrong_next
        if correct + wrong > mass:  # both only grow from here on: already rejected
            return True
    return False


def parameter_lower_bound(
    m: int, r: int, v: int, family: Callable[[float], Curve], *, beta: float, top: float = _MU_MAX
) -> float:
    """Largest parameter of a family (weaker privacy as it grows) that the guesses reject.

    Bisection keeping ``rejects(low)`` and not ``rejects(high)``; accurate to 1e-6 and errs low.
    Returns 0 when even a vanishing parameter is not rejected, ``top`` when nothing below it
    survives (perfect guesses at no privacy).
    """
    _check(m, r, v, beta)
    if not rejects(m, r, v, family(1e-9), beta=beta):
        return 0.0
    if rejects(m, r, v, family(top), beta=beta):
        return top
    low, high = 1e-9, top
    while high - low > 1e-6:
        mid = (low + high) / 2
        low, high = (mid, high) if rejects(m, r, v, family(mid), beta=beta) else (low, mid)
    return low


def mu_lower_bound(m: int, r: int, v: int, *, beta: float) -> float:
    """μ_lower: the largest μ with "the training is μ-GDP" rejected at level ``beta``."""
    return parameter_lower_bound(m, r, v, gaussian_family, beta=beta)


def epsilon_fdp(mu: float, delta: float) -> float:
    """ε of a μ-GDP mechanism at ``delta`` (an estimate, not a bound; see the module Notes)."""
    return gaussian_epsilon(mu, delta) if mu > 0.0 else 0.0


def mu_ceiling(m: int, *, beta: float) -> float:
    """Return the most μ_lower ``m`` canaries can show: all ``m`` guesses correct."""
    return mu_lower_bound(m, m, m, beta=beta)
