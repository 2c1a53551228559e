"""Fixed-point encoding of weighted float updates into Z_{2^b} (Bell et al., CCS 2020, §2).

A site with weight ``w`` (an integer in ``[0, W]``) and update ``x`` sends ``w * u`` where
``u = round((clip(x) + c) * (L - 1) / (2c))`` with ``L = 2**q`` levels, then two extra words:
``k``, how many coordinates of ``x`` the clip changed, and ``w`` itself. The server learns only
``S = sum_i w_i u_i``, ``sum_i k_i`` and ``sum_i w_i`` and decodes the weighted mean
``S / sum(w) * 2c / (L - 1) - c``.

Notes
-----
Error bound: each ``u`` is within half a step ``Δ/2 = c / (L - 1)`` of the clipped value, and the
weighted mean is a convex combination, so every coordinate of the decoded mean is within
``c / (2**q - 1)`` of the exact weighted mean of the clipped inputs (plus float64 rounding, ~1e-15
relative). Inputs outside ``[-c, c]`` are clipped first; that bias is not covered by the bound,
which is why the clip count travels (masked) with the update: the server learns how many
coordinates were clipped in the round, summed over sites, and nothing per site.
No sum wraps: :func:`ssl_fed.secagg.params.resolve_round` picks ``b`` with ``n W (L - 1) < 2**b``
and :class:`~ssl_fed.secagg.setup.RoundSetup` checks ``n d < 2**b`` for the clip count.

Consistency an honest sum always has (:func:`check_sum`): every ``S_j <= sum(w) (L - 1)`` (the
mean lies in ``[-c, c]``), ``sum(k) <= n d``, and ``sum(w)`` is what the weights allow. A site
that sends arbitrary words breaks these with overwhelming probability unless it aims for a value
inside the ranges: range checks bound a malicious input's effect, they cannot prove it honest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

UINT_DTYPES: dict[int, type[np.unsignedinteger]] = {16: np.uint16, 32: np.uint32, 64: np.uint64}
EXTRA_WORDS = 2
"""Words after the ``d`` values: the clip count, then the weight."""


def quantization_bound(clip_range: float, value_bits: int) -> float:
    """Bound the per-coordinate error of the decoded weighted mean (inputs within the clip)."""
    return clip_range / float(2**value_bits - 1)


def encode_weighted(
    flat: NDArray[np.floating], weight: int, clip_range: float, value_bits: int, word_bits: int
) -> NDArray[np.unsignedinteger]:
    """Encode 1-D float ``flat`` as ``[w*u_0, ..., w*u_{d-1}, clipped, w]`` (uint{b}).

    Whole-vector reference; sites encode with :func:`encode_weighted_into` (same words).
    """
    levels = float(2**value_bits - 1)
    x = np.array(flat, dtype=np.float64, copy=True).ravel()
    clipped = int(np.count_nonzero(np.abs(x) > clip_range))
    np.clip(x, -clip_range, clip_range, out=x)
    x += clip_range
    x *= levels / (2.0 * clip_range)
    np.rint(x, out=x)
    dtype = UINT_DTYPES[word_bits]
    out = np.empty(x.size + EXTRA_WORDS, dtype=dtype)
    out[: x.size] = x
    out[: x.size] *= dtype(weight)
    out[-2] = clipped
    out[-1] = weight
    return out


ENCODE_CHUNK = 1 << 15
"""Values encoded per step by :func:`encode_weighted_into` (a 256 KiB float64 scratch)."""


def encode_weighted_into(
    out: NDArray[np.unsignedinteger[Any]],
    parts: Sequence[tuple[str, NDArray[Any]]],
    weight: int,
    clip_range: float,
    value_bits: int,
) -> None:
    """Write :func:`encode_weighted` of the concatenated ``parts`` into ``out``, chunk by chunk.

    The same operations in the same order as the reference :func:`encode_weighted` (cast to
    float64, count, clip, shift, scale, round, cast to ``uint{b}``, multiply by the weight), so
    the words are identical (tests compare them); but no concatenated copy, no full-length float64
    temporaries: each chunk is converted into one small scratch buffer and written straight into
    ``out`` (``uint{b}[d + 2]``, e.g. the buffer that is then masked and sent). Raises
    ``ValueError`` naming the first part that holds NaN or inf.
    """
    scale = float(2**value_bits - 1) / (2.0 * clip_range)
    scratch, mags = np.empty(ENCODE_CHUNK, np.float64), np.empty(ENCODE_CHUNK, np.float64)
    w = out.dtype.type(weight)
    pos = clipped = 0
    for name, part in parts:
        flat = np.asarray(part).reshape(-1)
        for start in range(0, flat.size, ENCODE_CHUNK):
            src = flat[start : start + ENCODE_CHUNK]
            x, size = scratch[: src.size], src.size
            x[...] = src
            if not np.isfinite(x).all():
                raise ValueError(f"array {name!r} holds NaN or inf; fix the local update")
            clipped += int(np.count_nonzero(np.abs(x, out=mags[:size]) > clip_range))
            np.clip(x, -clip_range, clip_range, out=x)
            x += clip_range
            x *= scale
            np.rint(x, out=x)
            seg = out[pos : pos + size]
            seg[...] = x
            seg *= w
            pos += size
    if pos + EXTRA_WORDS != out.size:
        raise ValueError(f"parts hold {pos} values, the output expects {out.size - EXTRA_WORDS}")
    out[-2] = clipped
    out[-1] = weight


def check_sum(
    summed: NDArray[np.unsignedinteger],
    value_bits: int,
    num_inputs: int,
    max_weight: int,
    fixed_weight: int | None = None,
) -> str | None:
    """Return why an unmasked sum of ``num_inputs`` encodings cannot be honest, else ``None``.

    The total weight must lie in ``(0, num_inputs * max_weight]``, or equal
    ``num_inputs * fixed_weight`` when every weight is fixed. All checks are exact integers.
    """
    total, clipped, values = int(summed[-1]), int(summed[-2]), summed[:-EXTRA_WORDS]
    cap = num_inputs * (fixed_weight or max_weight)
    if not 0 < total <= cap:
        return f"total weight {total} is outside (0, {cap}] for {num_inputs} inputs"
    if fixed_weight is not None and total != cap:
        return f"total weight {total} != {fixed_weight} x {num_inputs} survivors"
    top = int(values.max()) if values.size else 0
    if top > total * (2**value_bits - 1):
        return f"a coordinate of the mean lies outside [-c, c] (sum word {top})"
    if clipped > num_inputs * values.size:
        return f"clip count {clipped} exceeds {num_inputs} inputs x {values.size} coordinates"
    return None


def decode_mean(
    summed: NDArray[np.unsignedinteger], clip_range: float, value_bits: int
) -> tuple[NDArray[np.float64], int, int]:
    """Decode ``[S_0, ..., S_{d-1}, sum k, sum w]`` into (weighted mean, total weight, clipped)."""
    total = int(summed[-1])
    if total <= 0:
        raise ValueError("total weight of the survivors is zero; nothing to average")
    step = 2.0 * clip_range / float(2**value_bits - 1)
    mean = summed[:-EXTRA_WORDS].astype(np.float64)  # one allocation; same values in place
    mean *= step / total
    mean -= clip_range
    return mean, total, int(summed[-2])
