"""Untargeted attacks that need only the attacker's own update: scale, sign flip, Gaussian.

Each maps the malicious site's honest delta ``x`` (one flat vector) to the delta it submits.
They are the baselines of the Byzantine-robustness literature (Blanchard et al., "Machine
Learning with Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS 2017, the Gaussian
attack; Fang et al., "Local Model Poisoning Attacks to Byzantine-Robust Federated Learning",
USENIX Security 2020, sign flipping and scaling).

Notes
-----
None of these is hidden by its size: a scaled or random update has a norm far from the honest
ones, so a server that sees single updates (``aggregation=plain``) can range-check it; under
SecAgg the server sees only the sum, and only the quantizer's per-coordinate clip (honest
encoder) or the range check on the decoded mean (any encoder) limits it (docs/poisoning.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]


def scale(own: Vector, factor: float) -> Vector:
    """Submit ``factor * x`` (a boosted honest update)."""
    return np.asarray(own, np.float64) * factor


def sign_flip(own: Vector, factor: float) -> Vector:
    """Submit ``-factor * x``: push the model against the honest direction."""
    return np.asarray(own, np.float64) * -factor


def gaussian(own: Vector, std: float, seed: int) -> Vector:
    """Submit ``N(0, std^2 I)`` of the honest update's shape, drawn from ``seed``."""
    return np.random.default_rng(seed).normal(0.0, std, size=np.shape(own))
