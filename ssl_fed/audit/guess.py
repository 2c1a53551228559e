"""From canary scores to guesses, and from guesses to ε_lower.

The auditor ranks the canaries by score, guesses "in" for the ``k_in`` highest and "out" for the
``k_out`` lowest, and abstains on the rest (Steinke, Nasr & Jagielski, arXiv 2305.08846, §4). The
rule is fixed before the coins are read. Because the best ``(k_in, k_out)`` is not known in
advance, a short list of rules declared here is tried and each is tested at level β / (number of
rules): by the union bound the reported maximum is still a valid lower bound at confidence
1 - β (a maximum over rules tested at level β each would not be).

The f-DP estimate of :mod:`ssl_fed.audit.fdp` (μ_lower of the Gaussian family and its ε) is a
second, separate analysis of the same scores with its own declared rules :data:`FDP_RULES` and
its own Bonferroni level β / len(FDP_RULES): symmetric rules, because its bound uses the wrong
guesses' mass as well (on the ideal Gaussian mechanism at ε = 8, m = 1000, guessing 100 in and
100 out gives the largest μ_lower; ``benchmarks/audit_reach.py``). It is reported beside
ε_lower and never used as the violation test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ssl_fed.audit.bound import epsilon_ceiling, epsilon_lower_bound
from ssl_fed.audit.fdp import epsilon_fdp, mu_ceiling, mu_lower_bound

GUESS_RULES: tuple[tuple[float, float], ...] = (
    (0.01, 0.0),
    (0.02, 0.0),
    (0.05, 0.0),
    (0.1, 0.0),
    (0.2, 0.0),
    (0.05, 0.05),
    (0.2, 0.2),
)
"""``(k_in, k_out)`` as fractions of m: the guessing rules tried, declared before any run."""

FDP_RULES: tuple[tuple[float, float], ...] = ((0.05, 0.05), (0.1, 0.1), (0.2, 0.2))
"""``(k_in, k_out)`` fractions of the f-DP estimate's rules, declared before any run."""


@dataclass(frozen=True)
class AuditOutcome:
    """The audit's verdict for one run: the best rule and every rule tried."""

    canaries: int
    included: int
    guesses: int
    correct: int
    epsilon_lower: float
    ceiling: float
    delta: float
    confidence: float
    rules: list[dict[str, float]]
    fdp_rules: list[dict[str, float]] | None = None
    mu_fdp_gaussian: float = 0.0
    epsilon_fdp_gaussian: float = 0.0
    mu_fdp_ceiling: float = 0.0
    epsilon_fdp_ceiling: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def count_correct(scores: torch.Tensor, coins: torch.Tensor, k_in: int, k_out: int) -> int:
    """Correct guesses when the ``k_in`` top scores are called in and ``k_out`` bottom out."""
    order = torch.argsort(scores, descending=True, stable=True)
    top = coins[order[:k_in]].sum()
    bottom = (~coins[order[len(order) - k_out :]]).sum() if k_out else torch.tensor(0)
    return int(top + bottom)


def fdp_estimate(
    scores: torch.Tensor, coins: torch.Tensor, *, beta: float
) -> list[dict[str, float]]:
    """μ_lower of every rule of :data:`FDP_RULES`, each at level β / len(FDP_RULES)."""
    m, level, out = int(scores.shape[0]), beta / len(FDP_RULES), []
    for frac_in, frac_out in FDP_RULES:
        k_in, k_out = max(1, round(frac_in * m)), round(frac_out * m)
        if k_in + k_out > m:
            continue
        v = count_correct(scores, coins, k_in, k_out)
        mu = mu_lower_bound(m, k_in + k_out, v, beta=level)
        out.append({"k_in": k_in, "k_out": k_out, "correct": v, "mu_fdp": mu})
    return out


def score_audit(
    scores: torch.Tensor, coins: torch.Tensor, *, delta: float, beta: float
) -> AuditOutcome:
    """Apply every rule of :data:`GUESS_RULES` and keep the largest Bonferroni ε_lower."""
    m = int(scores.shape[0])
    if coins.shape != scores.shape or coins.dtype != torch.bool:
        raise ValueError("coins must be a bool tensor with one entry per canary score")
    level = beta / len(GUESS_RULES)
    rules = []
    for frac_in, frac_out in GUESS_RULES:
        k_in, k_out = max(1, round(frac_in * m)), round(frac_out * m)
        if k_in + k_out > m:
            continue
        v = count_correct(scores, coins, k_in, k_out)
        eps = epsilon_lower_bound(m, k_in + k_out, v, delta=delta, beta=level)
        rules.append({"k_in": k_in, "k_out": k_out, "correct": v, "epsilon_lower": eps})
    best = max(rules, key=lambda r: r["epsilon_lower"])
    fdp_rules = fdp_estimate(scores, coins, beta=beta)
    mu_best, mu_top = max(r["mu_fdp"] for r in fdp_rules), mu_ceiling(m, beta=beta)
    return AuditOutcome(
        canaries=m,
        included=int(coins.sum()),
        guesses=int(best["k_in"] + best["k_out"]),
        correct=int(best["correct"]),
        epsilon_lower=float(best["epsilon_lower"]),
        ceiling=epsilon_ceiling(m, delta=delta, beta=beta),
        delta=delta,
        confidence=1.0 - beta,
        rules=rules,
        fdp_rules=fdp_rules,
        mu_fdp_gaussian=mu_best,
        epsilon_fdp_gaussian=epsilon_fdp(mu_best, delta),
        mu_fdp_ceiling=mu_top,
        epsilon_fdp_ceiling=epsilon_fdp(mu_top, delta),
    )
