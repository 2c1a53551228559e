"""Fixed-point encoding of weighted float updates into Z_{2^b} (Bell et al., CCS 2020, §2).

A site with weight ``w`` (an integer in ``[0, W]``) and update ``x`` sends ``w * u`` where
``u = round((clip(x) + c) * (L - 1) / (2c))`` with ``L = 2**q`` levels, plus ``w`` itself as one
extra word. The server learns only ``S = sum_i w_i u_i`` and ``sum_i w_i`` and decodes the weighted
mean ``S / sum(w) * 2c / (L - 1) - c``.

Notes
-----
Error bound: each ``u`` is within half a step ``Δ/2 = c / (L - 1)`` of the clipped value, and the
weighted mean is a convex combination, so every coordinate of the decoded mean is within
``c / (2**q - 1)`` of the exact weighted mean of the clipped inputs (plus float64 rounding, ~1e-15
relative). Inputs outside ``[-c, c]`` are clipped first; that bias is not covered by the bound.
No sum wraps: :func:`ssl_fed.secagg.params.resolve_round` picks ``b`` with ``n W (L - 1) < 2**b``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

UINT_DTYPES: dict[int, type[np.unsignedinteger]] = {16: np.uint16, 32: np.uint32, 64: np.uint64}


def quantization_bound(clip_range: float, value_bits: int) -> float:
    """Bound the per-coordinate error of the decoded weighted mean (inputs within the clip)."""
    return clip_range / float(2**value_bits - 1)


def encode_weighted(
    flat: NDArray[np.floating], weight: int, clip_range: float, value_bits: int, word_bits: int
) -> NDArray[np.unsignedinteger]:
    """Encode 1-D float ``flat`` with ``weight`` as ``[w*u_0, ..., w*u_{d-1}, w]`` (uint{b})."""
    levels = float(2**value_bits - 1)
    x = np.array(flat, dtype=np.float64, copy=True).ravel()
    np.clip(x, -clip_range, clip_range, out=x)
    x += clip_range
    x *= levels / (2.0 * clip_range)
    np.rint(x, out=x)
    dtype = UINT_DTYPES[word_bits]
    out = np.empty(x.size + 1, dtype=dtype)
    out[:-1] = x
    out[:-1] *= dtype(weight)
    out[-1] = weight
    return out


def decode_mean(
    summed: NDArray[np.unsignedinteger], clip_range: float, value_bits: int
) -> tuple[NDArray[np.float64], int]:
    """Decode the unmasked sum ``[S_0, ..., S_{d-1}, sum w]`` into (weighted mean, total weight)."""
    total = int(summed[-1])
    if total <= 0:
        raise ValueError("total weight of the survivors is zero; nothing to average")
    step = 2.0 * clip_range / float(2**value_bits - 1)
    mean = summed[:-1].astype(np.float64) * (step / total) - clip_range
    return mean, total
