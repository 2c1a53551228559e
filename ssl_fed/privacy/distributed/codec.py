"""Encode a site's clipped unit gradients into noisy modular integers; decode the unmasked sum.

Site (:func:`encode_units`): rotate every unit's clipped gradient with the round's public seed,
scale by ``1/γ``, conditionally round each unit, sum, add the site's Skellam share, and reduce
modulo ``2^b`` (:func:`to_words`). Server (:func:`decode_sum`): map the unmasked words back to
signed integers, refuse the round if any coordinate left the accept band (a wrap-around), then
unscale and un-rotate. With σ = 0 the decoded sum differs from the exact sum of the clipped
gradients by the rounding error only: per rotated coordinate less than ``U`` integer steps for
``U`` units, i.e. an L2 error of at most ``U √d' γ`` (:func:`rounding_error_bound`).

Notes
-----
Guarantee: the released value is a post-processing (modular reduction, decoding) of the integer
sum ``Σ_sites (Σ_units R(g_u)) + Σ_sites Sk(μ/m)``, whose sensitivity and noise are those of
:mod:`ssl_fed.privacy.distributed.params`; reduction mod ``2^b`` commutes with the sum, so
secure aggregation in ``Z_{2^W}`` (``2^b`` divides ``2^W``) reveals exactly that. A wrapped sum
is rejected, never decoded into a wrong model.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ssl_fed.privacy.distributed.params import DDPParams
from ssl_fed.privacy.distributed.rotation import rotate, unrotate
from ssl_fed.privacy.distributed.rounding import conditional_round
from ssl_fed.privacy.skellam import noise_share

CHUNK = 32
"""Units rotated at once (memory: CHUNK × d' float64)."""


class WrapError(ValueError):
    """The unmasked sum left the accept band: it wrapped around the modulus; the round is void."""


def encode_units(
    units: NDArray[np.floating], params: DDPParams, seed: int, *, add_noise: bool = True
) -> NDArray[np.int64]:
    """Return the site's noisy integer vector (length ``d'``) for clipped unit rows ``[U, d]``."""
    rows = np.asarray(units, dtype=np.float64).reshape(-1, params.dim)
    norms = np.sqrt(np.sum(rows * rows, axis=1)) if rows.size else np.zeros(0)
    if norms.size and float(norms.max()) > params.clip * (1 + 1e-6):
        raise ValueError(f"a unit's gradient norm {norms.max():.4g} exceeds the clip {params.clip}")
    total = np.zeros(params.padded, dtype=np.int64)
    for start in range(0, rows.shape[0], CHUNK):
        rotated = rotate(rows[start : start + CHUNK] * params.scale, seed)
        total += conditional_round(rotated, params.unit_bound).sum(axis=0)
    if add_noise:
        total += noise_share(params.mu_share, params.padded)
    return total


def to_words(values: NDArray[np.int64], bits: int) -> NDArray[np.uint64]:
    """Reduce signed integers modulo ``2^bits`` (two's complement, then mask)."""
    mask = np.uint64((1 << bits) - 1)
    return np.asarray(values, dtype=np.int64).view(np.uint64) & mask


def from_words(words: NDArray[np.unsignedinteger], bits: int) -> NDArray[np.int64]:
    """Map words modulo ``2^bits`` to signed integers in ``[-2^(bits-1), 2^(bits-1))``."""
    w = (np.asarray(words).astype(np.uint64) & np.uint64((1 << bits) - 1)).astype(np.int64)
    return np.where(w >= (1 << (bits - 1)), w - (1 << bits), w)


def check_wrap(signed: NDArray[np.int64], params: DDPParams) -> str | None:
    """Return why the sum must have wrapped (coordinates outside the band), else ``None``."""
    over = int(np.count_nonzero(np.abs(signed) > params.band))
    if over:
        return (
            f"{over} coordinate(s) of the unmasked sum lie outside ±2^{params.bits - 2}: the sum "
            "wrapped around the modulus; the round is rejected"
        )
    return None


def decode_sum(
    words: NDArray[np.unsignedinteger], params: DDPParams, seed: int
) -> NDArray[np.float64]:
    """Decode the unmasked modular sum into the float sum of clipped gradients plus noise."""
    signed = from_words(words, params.bits)
    if signed.shape != (params.padded,):
        raise ValueError(f"sum has shape {signed.shape}, expected ({params.padded},)")
    why = check_wrap(signed, params)
    if why is not None:
        raise WrapError(why)
    return unrotate(signed.astype(np.float64) / params.scale, seed, params.dim)


def rounding_error_bound(params: DDPParams, units: int) -> float:
    """L2 bound of the σ = 0 decoding error for ``units`` rounded units (float units)."""
    return units * math.sqrt(params.padded) / params.scale
