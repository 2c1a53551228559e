"""ε of a ledger's history: Gaussian and Skellam trainings by RDP, pure ε-DP releases added.

Kept apart from :mod:`ssl_fed.privacy.ledger` (the file and its integrity) so the arithmetic that
turns recorded steps into one ε is one small function that tests and ``ledger verify`` share.

Notes
-----
A history of Gaussian steps only is composed by the configured accountant (RDP, Mironov 2017;
or PRV, Gopi et al. 2021). A history holding any distributed-noise (Skellam) step is composed by
RDP over all steps (Agarwal, Kairouz, Liu, arXiv 2110.04995, Thm 3.5 for the Skellam terms; the
Gaussian terms exactly). Pure ε-DP releases (drift alarms) add by basic composition
(Dwork & Roth 2014, Thm 3.16), which is valid beside any (ε, δ) guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence

from ssl_fed.privacy.accounting import Step, epsilon_for_history
from ssl_fed.privacy.ledger_records import LedgerEntry, ReleaseEntry
from ssl_fed.privacy.skellam import SkellamStep
from ssl_fed.privacy.skellam import epsilon_for_history as skellam_epsilon


def history_epsilon(
    entries: Sequence[LedgerEntry],
    releases: Sequence[ReleaseEntry],
    delta: float,
    accountant: str,
    extra: Sequence[Step] = (),
    skellam: Sequence[SkellamStep] = (),
) -> float:
    """ε at ``delta`` of the recorded trainings and releases, plus planned steps."""
    released = sum(r.epsilon for r in releases)
    sk = [s for e in entries if (s := e.skellam_step) is not None] + list(skellam)
    gauss = [e.step for e in entries if e.skellam_step is None] + list(extra)
    if not sk:
        return epsilon_for_history(gauss, delta, accountant) + released
    return skellam_epsilon([*gauss, *sk], delta) + released


def skellam_step(planned: Step, ddp: dict[str, float]) -> SkellamStep:
    """Return the Skellam accountant's step for a planned distributed-noise training."""
    sigma, q, steps = planned
    l2, l1 = float(ddp["l2_sensitivity"]), float(ddp["l1_sensitivity"])
    return SkellamStep(sigma, q, steps, l2, l1)
