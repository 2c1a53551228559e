"""How a site's drift alarm may leave it: not at all, or as a DP release charged to its ledger.

Two mechanisms for the ``dp-alarm`` policy:

* ``svt``, AboveThreshold (the sparse vector technique; Dwork & Roth 2014, "The Algorithmic
  Foundations of Differential Privacy", Alg. 1 and Thm 3.23; Lyu, Su & Li 2017, "Understanding
  the Sparse Vector Technique", Alg. 1 with c = 1). An *epoch* draws a noisy threshold
  ``T + Lap(2Δ/ε)``; each round adds ``Lap(4Δ/ε)`` to the drift statistic and releases 1 if it
  clears the noisy threshold (the epoch then ends) and 0 otherwise. The whole epoch, however many
  0s it releases, is ε-DP, so a quiet site pays ε once, not once per round. ``T`` is the public
  McDiarmid threshold and ``Δ = 2/n + 2/m`` (:mod:`ssl_fed.monitor.sketch`).
* ``rr``, randomized response (Warner 1965; Dwork & Roth 2014, §3.2): the local alarm bit is
  kept with probability ``e^ε / (1 + e^ε)`` and flipped otherwise. Each release is ε-DP for any
  bit, however computed, so it may use the tight bootstrapped threshold, but every round pays ε.

Notes
-----
Guarantee: with ``svt`` each epoch is ε-DP, with ``rr`` each round; the ε is written to the
site's ledger *before* the release (:meth:`~ssl_fed.privacy.PrivacyLedger.charge_release`), and
the ledger composes it with the trainings by basic composition. Neighbouring datasets differ in
one image; each window holds a fixed, public number of images (the reference's first ``m``,
each round's latest ``n``), so one image changes at most one element of each window it is in.
The noise must be secret: pass an unseeded generator (OS entropy) outside simulations. If a
charge is refused (budget spent), nothing is released.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

RELEASES = ("none", "local", "dp-alarm")
"""Site policy ``drift_release``: ``none`` (no monitor), ``local`` (alert stays at the site),
``dp-alarm`` (a DP-released alarm bit leaves in the train reply)."""

MECHANISMS = ("svt", "rr")

Charge = Callable[[float, str], None]
"""Write ``(epsilon, mechanism)`` to the site's ledger; raise to refuse the release."""


def keep_probability(epsilon: float) -> float:
    """Randomized response: probability that the true bit is sent, ``e^ε / (1 + e^ε)``."""
    return 1.0 / (1.0 + math.exp(-epsilon))


@dataclass
class AboveThreshold:
    """AboveThreshold over a stream of drift statistics, restarted after each release of 1.

    Attributes
    ----------
    epsilon : float
        ε of one epoch.
    threshold : float
        Public threshold ``T``.
    sensitivity : float
        ``Δ``, the most one image can move one statistic.
    """

    epsilon: float
    threshold: float
    sensitivity: float
    noisy_threshold: float | None = field(default=None, init=False)

    @property
    def threshold_scale(self) -> float:
        """Laplace scale of the threshold noise, ``2Δ/ε`` (ε/2 of the budget)."""
        return 2 * self.sensitivity / self.epsilon

    @property
    def query_scale(self) -> float:
        """Laplace scale of each statistic's noise, ``4Δ/ε`` (ε/2, one positive, c = 1)."""
        return 4 * self.sensitivity / self.epsilon

    def release(self, statistic: float, rng: np.random.Generator, charge: Charge) -> int:
        """Return the released bit for this round; charge a new epoch first if none is open."""
        if self.noisy_threshold is None:
            charge(self.epsilon, "svt")
            rho = rng.laplace(0.0, self.threshold_scale)
            self.noisy_threshold = self.threshold + rho
        nu = rng.laplace(0.0, self.query_scale)
        if statistic + nu >= self.noisy_threshold:
            self.noisy_threshold = None
            return 1
        return 0


@dataclass
class RandomizedResponse:
    """Randomized response of the local alarm bit, ε per release."""

    epsilon: float

    def release(self, bit: bool, rng: np.random.Generator, charge: Charge) -> int:
        """Charge ε, then send ``bit`` with probability :func:`keep_probability`, else flip it."""
        charge(self.epsilon, "rr")
        keep = rng.random() < keep_probability(self.epsilon)
        return int(bit) if keep else 1 - int(bit)


def check_release(release: str, mechanism: str, epsilon: float) -> None:
    """Raise ``ValueError`` naming the field unless the release settings are meaningful."""
    if release not in RELEASES:
        raise ValueError(f"drift_release={release!r} is invalid: use one of {list(RELEASES)}")
    if mechanism not in MECHANISMS:
        raise ValueError(f"drift_mechanism={mechanism!r} is invalid: use one of {MECHANISMS}")
    number = isinstance(epsilon, int | float) and not isinstance(epsilon, bool)
    if not (number and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"drift_alarm_epsilon={epsilon!r} is invalid: use a finite number > 0")
