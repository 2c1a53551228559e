"""Randomized Hadamard rotation with a public seed: ``y = H D x / √d'`` and its inverse.

``D`` is a diagonal of random signs drawn from the round's public seed and ``H`` the Sylvester
Hadamard matrix of size ``d' = 2^⌈log2 d⌉`` (``x`` is zero-padded). ``H D / √d'`` is orthogonal,
so the L2 norm (hence the clipping bound) is unchanged, and every coordinate of the rotated
vector is a Rademacher sum ``Σ_i ±x_i / √d'``: sub-Gaussian with variance proxy ``‖x‖² / d'``
(Kairouz, Liu, Steinke, arXiv 2102.06387, Lemma 29, flatness ρ = 1). That flattening is what
keeps a single large coordinate from wrapping the modular sum.

Notes
-----
The seed is public (the server must invert the rotation); the rotation is data-independent, so
it costs no privacy. It is not a secret and must not be reused for anything that is.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def padded_dim(dim: int) -> int:
    """Smallest power of two ``>= dim`` (at least 1)."""
    return 1 << max(0, (dim - 1).bit_length())


def fwht(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unnormalized fast Walsh-Hadamard transform along the last axis (length a power of 2)."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"the last axis must have a power-of-two length, got {n}")
    lead = x.shape[:-1]
    y = np.array(x, dtype=np.float64, copy=True)
    h = 1
    while h < n:
        y = y.reshape(*lead, n // (2 * h), 2, h)
        y = np.stack((y[..., 0, :] + y[..., 1, :], y[..., 0, :] - y[..., 1, :]), axis=-2)
        h *= 2
    return y.reshape(*lead, n)


def signs(seed: int, dim: int) -> NDArray[np.float64]:
    """Return the diagonal of ``D``: ±1 per padded coordinate, from the public ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, padded_dim(dim)).astype(np.float64) * 2.0 - 1.0


def rotate(x: NDArray[np.floating], seed: int) -> NDArray[np.float64]:
    """Rotate the rows of ``x`` (``[..., d]``) into ``[..., d']``; norms are preserved."""
    d = x.shape[-1]
    n = padded_dim(d)
    padded = np.zeros((*x.shape[:-1], n), dtype=np.float64)
    padded[..., :d] = x
    out: NDArray[np.float64] = fwht(padded * signs(seed, d)) / np.sqrt(n)
    return out


def unrotate(y: NDArray[np.floating], seed: int, dim: int) -> NDArray[np.float64]:
    """Invert :func:`rotate`: ``x = D H y / √d'``, cut back to ``dim`` coordinates."""
    n = y.shape[-1]
    if n != padded_dim(dim):
        raise ValueError(f"rotated length {n} does not match dim {dim} (padded {padded_dim(dim)})")
    x: NDArray[np.float64] = fwht(np.asarray(y, dtype=np.float64)) / np.sqrt(n) * signs(seed, dim)
    return x[..., :dim]
