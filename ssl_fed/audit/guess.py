"""From canary scores to guesses, and from guesses to ε_lower.

The auditor ranks the canaries by score, guesses "in" for the ``k_in`` highest and "out" for the
``k_out`` lowest, and abstains on the rest (Steinke, Nasr & Jagielski, arXiv 2305.08846, §4). The
rule is fixed before the coins are read. Because the best ``(k_in, k_out)`` is not known in
advance, a short list of rules declared here is tried and each is tested at level β / (number of
rules): by the union bound the reported maximum is still a valid lower bound at confidence
1 - β (a maximum over rules tested at level β each would not be).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ssl_fed.audit.bound import epsilon_ceiling, epsilon_lower_bound

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def count_correct(scores: torch.Tensor, coins: torch.Tensor, k_in: int, k_out: int) -> int:
    """Correct guesses when the ``k_in`` top scores are called in and ``k_out`` bottom out."""
    order = torch.argsort(scores, descending=True, stable=True)
    top = coins[order[:k_in]].sum()
    bottom = (~coins[order[len(order) - k_out :]]).sum() if k_out else torch.tensor(0)
    return int(top + bottom)


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
    )
