"""ε from a site's whole history of DP-SGD steps, and σ calibrated against it.

Every training a site ever did is a sequence of Poisson-subsampled Gaussian mechanisms, recorded
as ``(noise_multiplier, sample_rate, steps)``. Composition over rounds and runs is the
concatenation of those histories, evaluated by one of Opacus' accountants: RDP (Mironov,
"Rényi Differential Privacy", arXiv 1702.07476; Mironov, Talwar & Zhang, arXiv 1908.10530) or PRV
(Gopi, Lee & Wutschitz, arXiv 2106.02848). Summing per-round ε would overstate the spend many
times over; resetting it per run would understate it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.accountant import IAccountant

Step = tuple[float, float, int]

_ACCOUNTANTS: dict[str, type[IAccountant]] = {"rdp": RDPAccountant, "prv": PRVAccountant}


def make_accountant(kind: str, history: Sequence[Step] = ()) -> IAccountant:
    """Return an Opacus accountant of ``kind`` holding ``history``."""
    if kind not in _ACCOUNTANTS:
        raise ValueError(f"unknown accountant {kind!r}; valid: {sorted(_ACCOUNTANTS)}")
    accountant = _ACCOUNTANTS[kind]()
    accountant.history = [(float(s), float(q), int(n)) for s, q, n in history]
    return accountant


def epsilon_for_history(history: Sequence[Step], delta: float, kind: str = "rdp") -> float:
    """ε at ``delta`` of the composed ``history``; 0 for an empty history."""
    steps = [h for h in history if h[2] > 0]
    if not steps:
        return 0.0
    return float(make_accountant(kind, steps).get_epsilon(delta=delta))


def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: Sequence[Step] = (),
    kind: str = "rdp",
    tolerance: float = 0.01,
) -> float:
    """Smallest σ such that ``prior`` plus ``steps`` more steps at ``sample_rate`` stays ≤ target.

    With an empty ``prior`` this is what ``opacus.accountants.utils.get_noise_multiplier``
    computes; the prior history lets a site that already spent part of its budget size the noise
    of its next training against what remains, rather than against the whole budget.

    Raises
    ------
    ValueError
        When ``prior`` alone already reaches ``target_epsilon`` (nothing is left to spend).
    """
    spent = epsilon_for_history(prior, delta, kind)
    if spent >= target_epsilon:
        raise ValueError(
            f"the ledger already spent ε={spent:.3f} of the target ε={target_epsilon}; "
            "no noise level can keep a further training within it"
        )

    def eps(sigma: float) -> float:
        return epsilon_for_history([*prior, (sigma, sample_rate, steps)], delta, kind)

    low, high = 0.0, 10.0
    while eps(high) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e6:
            raise ValueError("could not reach the target ε with any σ ≤ 1e6")
    while high - low > 1e-4 * max(1.0, high) and eps(high) < target_epsilon - tolerance:
        mid = (low + high) / 2
        if eps(mid) > target_epsilon:
            low = mid
        else:
            high = mid
    assert math.isfinite(high) and eps(high) <= target_epsilon
    return high
