"""The site's drift monitor: one round's fresh window in, a local reading and a release out.

One hop: features of a fresh window (computed at the site with the public global encoder) ->
the drift statistic against the site's own sketch -> the local alarm -> what the site's policy
lets leave (:mod:`ssl_fed.monitor.release`). The statistic, the local alarm and the features
stay in the site's log; :meth:`DriftReading.outgoing` is the only thing a train reply may carry.

Notes
-----
Guarantee: the statistic is a function of the site's reference sketch, the site's fresh window
and public constants (the feature map's seed and bandwidth, the window sizes, α); no other
site's data and nothing the server sends besides the public encoder enter it. Under ``local``
nothing leaves; under ``dp-alarm`` one bit leaves, ε-DP as stated in
:mod:`ssl_fed.monitor.release` and charged to the ledger before it is released.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ssl_fed.monitor.release import (
    AboveThreshold,
    Charge,
    RandomizedResponse,
    check_release,
)
from ssl_fed.monitor.sketch import ReferenceSketch, sensitivity
from ssl_fed.privacy.ledger_records import BudgetExceededError

if TYPE_CHECKING:
    from ssl_fed.privacy.ledger import PrivacyLedger
    from ssl_fed.privacy.policy import SitePolicy

ALARM_KEY = "drift-alarm"
"""The train-reply metric that carries a DP-released alarm (whitelisted in the guard)."""


@dataclass(frozen=True)
class DriftReading:
    """One round at one site.

    Attributes
    ----------
    round : int
        Federated round (or check number).
    statistic : float
        Drift statistic ``s`` (stays at the site).
    local_alarm : bool
        ``s`` above the site's bootstrapped threshold (stays at the site).
    released : int or None
        The DP-released bit, or ``None`` when nothing leaves (policy, or budget spent).
    epsilon : float
        ε charged to the ledger this round (0 when nothing new was charged).
    """

    round: int
    statistic: float
    local_alarm: bool
    released: int | None
    epsilon: float

    def outgoing(self) -> dict[str, int]:
        """Return what may leave the site: ``{"drift-alarm": bit}`` or nothing."""
        return {} if self.released is None else {ALARM_KEY: self.released}

    def to_dict(self) -> dict[str, Any]:
        """Return the site-local log line (JSON-ready)."""
        return asdict(self)


class DriftMonitor:
    """Compare each fresh window with the site's sketch and release per the site's policy.

    Parameters
    ----------
    sketch : ReferenceSketch
        The site's own reference sketch.
    release : str
        ``local`` or ``dp-alarm`` (``none`` means no monitor is built).
    mechanism : str
        ``svt`` or ``rr`` (``dp-alarm`` only).
    epsilon : float
        ε per SVT epoch or per RR release.
    charge : callable, optional
        ``charge(epsilon, mechanism)`` writes the ledger (required for ``dp-alarm``).
    rng : numpy.random.Generator, optional
        Noise source; default unseeded (OS entropy). Seed it only in simulations.

    Notes
    -----
    Under ``svt`` a released 1 latches: the alarm stands and is re-sent each round at no ε (it
    is a function of an already released value) until :meth:`reset`. A drifted site therefore
    pays for its alarm once, not every round the drift persists. An ``rr`` bit is too noisy to
    latch on; each round is a fresh release.
    """

    def __init__(
        self,
        sketch: ReferenceSketch,
        *,
        release: str = "local",
        mechanism: str = "svt",
        epsilon: float = 0.25,
        charge: Charge | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        check_release(release, mechanism, epsilon)
        if release == "none":
            raise ValueError("drift_release=none: no monitor runs; do not build one")
        if release == "dp-alarm" and charge is None:
            raise ValueError("drift_release=dp-alarm needs a ledger charge: nothing is uncharged")
        self.sketch, self.release, self.mechanism = sketch, release, mechanism
        self._charge = charge
        self._rng = rng if rng is not None else np.random.default_rng()
        delta = sensitivity(sketch.window, sketch.m)
        self._svt = AboveThreshold(epsilon, sketch.public_threshold, delta)
        self._rr = RandomizedResponse(epsilon)
        self.latched = False

    def state(self) -> dict[str, Any]:
        """Return what must survive between rounds: the latch and the open epoch's threshold.

        The noisy threshold is secret noise: keep it at the site (beside its ledger).
        """
        return {"latched": self.latched, "noisy_threshold": self._svt.noisy_threshold}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state` (the same epoch goes on: no new ε is charged for it)."""
        self.latched = bool(state["latched"])
        nt = state["noisy_threshold"]
        self._svt.noisy_threshold = None if nt is None else float(nt)

    def reset(self) -> None:
        """Re-arm a latched SVT alarm (the operator rebuilt the reference or acknowledged it)."""
        self.latched = False

    def observe(self, round: int, fresh: npt.ArrayLike) -> DriftReading:
        """Score one fresh window (``sketch.window`` feature rows); decide the release."""
        s = self.sketch.statistic(fresh)
        alarm = s > self.sketch.local_threshold
        if self.release == "local":
            return DriftReading(round, s, alarm, None, 0.0)
        if self.latched:  # re-sending a released 1 is post-processing: no new ε
            return DriftReading(round, s, alarm, 1, 0.0)
        spent: list[float] = []

        def charge(epsilon: float, mechanism: str) -> None:
            assert self._charge is not None
            self._charge(epsilon, mechanism)
            spent.append(epsilon)

        try:
            if self.mechanism == "svt":
                bit = self._svt.release(s, self._rng, charge)
            else:
                bit = self._rr.release(alarm, self._rng, charge)
        except BudgetExceededError:
            return DriftReading(round, s, alarm, None, 0.0)
        self.latched = self.mechanism == "svt" and bit == 1
        return DriftReading(round, s, alarm, bit, float(sum(spent)))


def monitor_for_site(
    sketch: ReferenceSketch,
    policy: SitePolicy,
    ledger: PrivacyLedger | None,
    run_id: str,
    round_of: Callable[[], int],
) -> DriftMonitor | None:
    """Build the monitor the site's own policy asks for (``None`` for ``drift_release: none``).

    Under ``dp-alarm`` every charge goes to ``ledger`` as a ``release`` record of ``run_id`` at
    the current round (``round_of()``), before the release. Nothing the server sends enters.
    """
    if policy.drift_release == "none":
        return None
    charge: Charge | None = None
    if policy.drift_release == "dp-alarm":
        if ledger is None:
            raise ValueError("drift_release=dp-alarm needs the site's ledger to charge ε to")
        book = ledger

        def charge(epsilon: float, mechanism: str) -> None:
            book.charge_release(
                run_id=run_id, round=round_of(), epsilon=epsilon, mechanism=mechanism
            )

    return DriftMonitor(
        sketch,
        release=policy.drift_release,
        mechanism=policy.drift_mechanism,
        epsilon=policy.drift_alarm_epsilon,
        charge=charge,
    )
