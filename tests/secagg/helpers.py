"""Shared builders for SecAgg+ tests: seeded site updates and their exact weighted mean."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.setup import ArraySpec

SPEC: ArraySpec = [("w", (3, 4)), ("b", (5,))]
Inputs = dict[int, tuple[dict[str, NDArray[np.float64]], float]]


def site_inputs(ids: list[int], seed: int = 0, scale: float = 1.0) -> Inputs:
    """Updates in [-2 scale, 2 scale] (inside the default clip range 8) with weights 1..99."""
    rng = np.random.default_rng(seed)
    return {
        i: (
            {n: rng.uniform(-2 * scale, 2 * scale, size=s) for n, s in SPEC},
            int(rng.integers(1, 100)),
        )
        for i in ids
    }


def exact_mean(inputs: Inputs, ids: list[int]) -> dict[str, NDArray[np.float64]]:
    """The float64 weighted mean over ``ids``."""
    total = sum(inputs[i][1] for i in ids)
    return {n: sum(inputs[i][0][n] * inputs[i][1] for i in ids) / total for n, _ in SPEC}


def max_err(got: dict[str, NDArray[np.float64]], want: dict[str, NDArray[np.float64]]) -> float:
    """Largest absolute coordinate difference."""
    return max(float(np.abs(got[n] - want[n]).max()) for n in want)
