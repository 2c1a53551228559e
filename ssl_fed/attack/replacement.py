"""Model replacement ("How To Backdoor Federated Learning"): boost one update to replace the model.

Bagdasaryan, Veit, Hua, Estrin & Shmatikov, AISTATS 2020 (arXiv 1807.00459), §4 eq. (3). The
server updates ``G <- G + (η/n) Σ_i (L_i - G)``; an attacker that wants the global model to
become its own model ``X`` submits ``L = γ (X - G) + G`` with ``γ = n/η``: if the honest updates
roughly cancel (near convergence), the new global model is ``X``. In delta form the submitted
delta is ``γ (X - G)``. ssl-fed's server applies the mean delta (``η = 1``), so ``γ = n`` sites
per round unless ``strength`` sets it.

Notes
-----
``X`` is the attacker's locally trained model: in the simulation, the site's model after its
round of (DP) training on its own partition. ssl-fed pretrains without labels, so no trigger
task is trained here and no backdoor accuracy is measured: what the suite measures is the
replacement mechanism (one update carrying ``n`` times its weight) and its effect on the probe.

:func:`mean_override` is the same idea aimed at the aggregate: ``m`` colluders choose their
updates so that the *mean* lands on a target ``t`` (here ``-t sign(μ)`` per coordinate,
against the honest direction). Its values exceed ``c``: a server that sees updates
(``plain``) or an honest encoder's clip stops it; raw SecAgg words with an in-range target pass
the range check (docs/poisoning.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]


def model_replacement(own: Vector, gamma: float) -> Vector:
    """Submit ``γ (X - G)``, the attacker's own delta boosted by ``γ = n/η``."""
    return np.asarray(own, np.float64) * gamma


def mean_override(known: list[Vector], num_sites: int, num_attackers: int, target: float) -> Vector:
    """Submit ``(n t - (n - m) μ) / m``: the mean of ``n`` updates is ``t = -target sign(μ)``.

    ``μ`` is the mean of the ``known`` honest updates, the colluders' estimate of the honest mean.
    """
    mu = np.mean(np.stack([np.asarray(k, np.float64) for k in known]), axis=0)
    t = -target * np.sign(mu)
    result: Vector = (num_sites * t - (num_sites - num_attackers) * mu) / num_attackers
    return result
