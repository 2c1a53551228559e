"""Conditional randomized rounding to integers with a bounded L2 norm.

Randomized rounding maps each coordinate ``x`` to ``⌊x⌋ + Bernoulli(x - ⌊x⌋)``: unbiased, error
below 1 per coordinate, so ``‖R(x)‖ ≤ ‖x‖ + √d`` always. *Conditional* rounding (Kairouz, Liu,
Steinke, arXiv 2102.06387, §4.1 and Prop. 22) redraws until
``‖R(x)‖² ≤ c² + d/4 + √(2 ln(1/β)) (c + √d/2)`` for ``‖x‖ ≤ c``; a single draw meets it with
probability at least ``1 - β``. We use β = e^-0.5 (√(2 ln 1/β) = 1), as the paper's experiments.

Notes
-----
Guarantee used by the accountant: every rounded unit vector has L2 norm at most
:func:`rounding_bound` ``(c, d, β)`` (enforced here, by construction, not only in expectation),
and being an integer vector its L1 norm is at most ``min(√d · B, B²)``. The rounding coins are
secret (OS entropy): they shape a unit's contribution.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
from numpy.typing import NDArray

BETA = math.exp(-0.5)
MAX_TRIES = 1000


def rounding_bound(c: float, dim: int, beta: float = BETA) -> float:
    """L2 bound after conditional rounding of a vector of norm ``<= c`` in ``dim`` coordinates."""
    plain = c + math.sqrt(dim)
    if beta <= 0:
        return plain
    sq = c**2 + dim / 4 + math.sqrt(2 * math.log(1 / beta)) * (c + math.sqrt(dim) / 2)
    return min(plain, math.sqrt(sq))


def l1_bound(l2: float, dim: int) -> float:
    """L1 bound of an integer vector with L2 norm ``<= l2`` (each nonzero entry has |v| ≤ v²)."""
    return l2 * min(math.sqrt(dim), l2)


def conditional_round(
    rows: NDArray[np.floating], bound: float, rng: np.random.Generator | None = None
) -> NDArray[np.int64]:
    """Round every row of ``rows`` (``[U, d]``) until its L2 norm is ``<= bound``.

    Raises ``ValueError`` if a row still exceeds the bound after :data:`MAX_TRIES` draws (its
    norm before rounding was larger than the clip the bound was made for).
    """
    gen = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    x = np.asarray(rows, dtype=np.float64)
    floor = np.floor(x)
    frac = x - floor
    out = np.empty(x.shape, dtype=np.int64)
    todo = np.arange(x.shape[0])
    for _ in range(MAX_TRIES):
        if todo.size == 0:
            return out
        draw = floor[todo] + (gen.random(frac[todo].shape) < frac[todo])
        ok = np.sqrt(np.sum(draw * draw, axis=-1)) <= bound
        out[todo[ok]] = draw[ok].astype(np.int64)
        todo = todo[~ok]
    if todo.size == 0:
        return out
    raise ValueError(
        f"{todo.size} unit(s) exceed the rounding bound {bound:.3g} after {MAX_TRIES} draws: "
        "their norm before rounding is above the clip the bound was computed for"
    )
