"""Integer inputs modulo ``2^b`` for SecAgg+: the encoding distributed DP needs.

Fixed-point mode (:mod:`ssl_fed.secagg.quantize`) clips and quantizes floats and sizes the words
so that no sum can overflow. Distributed DP instead hands SecAgg integers that already carry
their noise share and must be summed *modulo* ``2^b`` (Kairouz, Liu, Steinke, arXiv 2102.06387,
§4): reduction commutes with the sum, so what the server unmasks is the noisy integer sum mod
``2^b`` and nothing else. The words are ``uint{W}`` with ``2^b`` dividing ``2^W``, so SecAgg's
masking in ``Z_{2^W}`` and a final reduction mod ``2^b`` give the same sum. The last two words
are, as in fixed-point mode, a clip count (always 0 here) and the weight.

Notes
-----
The server cannot check a modular sum against a range (any residue is possible); the decoder of
the distributed-DP codec checks it for wrap-around instead. Only the weight and clip words are
checked here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.quantize import EXTRA_WORDS, UINT_DTYPES


def container_bits(modular_bits: int) -> int:
    """Smallest SecAgg word (16, 32 or 64 bits) that holds values modulo ``2^modular_bits``."""
    for w in sorted(UINT_DTYPES):
        if modular_bits <= w:
            return w
    raise ValueError(f"modular_bits must be at most 64, got {modular_bits}")


def encode_modular(
    flat: NDArray[Any], weight: int, modular_bits: int, word_bits: int
) -> NDArray[np.unsignedinteger]:
    """Encode signed integers ``flat`` as ``[v_0 mod 2^b, ..., v_{d-1} mod 2^b, 0, w]``."""
    values = np.asarray(flat)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"modular SecAgg inputs must be integers, got dtype {values.dtype}")
    mask = np.uint64((1 << modular_bits) - 1)
    words = values.astype(np.int64).view(np.uint64) & mask
    out = np.zeros(words.size + EXTRA_WORDS, dtype=UINT_DTYPES[word_bits])
    out[: words.size] = words
    out[-1] = weight
    return out


def check_modular_sum(
    summed: NDArray[np.unsignedinteger], num_inputs: int, max_weight: int, fixed: int | None
) -> str | None:
    """Return why the weight or clip words of a modular sum cannot be honest, else ``None``."""
    total, clipped = int(summed[-1]), int(summed[-2])
    cap = num_inputs * (fixed or max_weight)
    if not 0 < total <= cap or (fixed is not None and total != cap):
        return f"total weight {total} does not fit {num_inputs} inputs (cap {cap})"
    if clipped:
        return f"clip word {clipped} must be 0 for modular inputs"
    return None


def modular_values(summed: NDArray[np.unsignedinteger], modular_bits: int) -> NDArray[np.uint64]:
    """Return the value words of the unmasked sum reduced modulo ``2^modular_bits``."""
    mask = np.uint64((1 << modular_bits) - 1)
    return summed[:-EXTRA_WORDS].astype(np.uint64) & mask
