"""A malicious site that writes its own SecAgg words, and what the server decodes from them.

An honest site encodes through :func:`ssl_fed.secagg.quantize.encode_weighted`, which clips every
value to ``[-c, c]``. A malicious site runs its own code: it can put any word in ``Z_{2^b}`` under
its masks. Masks cancel in the sum, so the server unmasks exactly
``S = Σ_honest enc(x_i) + a mod 2^b`` for the attacker's words ``a`` (Bell et al., CCS 2020, §3;
additive masking hides ``a`` and never constrains it). This module builds such words (the same
fixed-point map without the clip, wrapped modulo ``2^b``, an honest-looking weight and a zero
clip count) and the unmasked sum, so a round can be replayed with and without the server's
range check (:func:`ssl_fed.secagg.quantize.check_sum`).

Notes
-----
What this shows (docs/poisoning.md): with the weight fixed (``aggregation`` weight 1), the range
check forces every coordinate of the decoded mean into ``[-c, c]`` and rejects the round
otherwise; it does not bound one site's *share* of the mean. Any target mean in ``[-c, c]^d`` is
reachable by one site that knows (or estimates) the honest sum, a shift of up to ``2c`` per
coordinate, ``n`` times the ``2c/n`` an honest-encoded (clipped) input can cause.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.quantize import UINT_DTYPES, encode_weighted

Words = NDArray[np.unsignedinteger]


def raw_words(
    flat: NDArray[np.floating], weight: int, clip_range: float, value_bits: int, word_bits: int
) -> Words:
    """Encode ``flat`` like an honest site but without the clip, wrapping modulo ``2^b``."""
    levels = float(2**value_bits - 1)
    x = np.rint((np.asarray(flat, np.float64) + clip_range) * (levels / (2.0 * clip_range)))
    modulus = 2**word_bits
    wrapped = [int(v) % modulus for v in x.astype(object)] if word_bits == 64 else None
    dtype = UINT_DTYPES[word_bits]
    out = np.zeros(x.size + 2, dtype=dtype)
    if wrapped is not None:
        out[: x.size] = np.array(wrapped, dtype=np.uint64)
    else:
        out[: x.size] = np.mod(x, float(modulus)).astype(np.int64).astype(dtype)
    out[: x.size] *= dtype(weight)
    out[-1] = weight
    return out


def honest_words(
    flat: NDArray[np.floating], weight: int, clip_range: float, value_bits: int, word_bits: int
) -> Words:
    """Return the words an honest site sends (the quantizer's clip applied)."""
    return encode_weighted(flat, weight, clip_range, value_bits, word_bits)


def unmasked_sum(encodings: list[Words]) -> Words:
    """Return ``Σ encodings mod 2^b``: what the server holds once every mask is removed."""
    total = np.zeros_like(encodings[0])
    for e in encodings:
        total += e  # unsigned arithmetic wraps modulo 2^b, as the masked sum does
    return total
