"""Streaming mask arithmetic: every ChaCha20 keystream added straight into the masked buffer.

A site sends ``y_i = x_i + PRG(b_i) + Σ_j ±PRG(s_ij) mod 2^b`` and the server computes
``Σ_i y_i - Σ_i PRG(b_i) ∓ PRG(s_ij)`` over the pairs with a dropped site (Bell et al., CCS 2020,
Fig. 5, rounds 2 and 4). Both are one output vector, a list of signed keystream terms and, at the
server, the survivors' vectors. Materialising each keystream as its own full-length array (the
one-shot :func:`~ssl_fed.secagg.prg.keystream_words`) costs one fresh allocation (page faults)
and two extra passes over memory per term: at 11M parameters x 10 sites that made mask
generation the largest cost of a round. :func:`apply_masks` instead walks the output once, in
chunks of :data:`CHUNK_BYTES`; for each chunk every open ChaCha20 stream writes its next bytes
into one small scratch buffer (a zero-copy ``uint{b}`` view), which is added to or subtracted
from the chunk in place while both are in cache.

Notes
-----
Security is unchanged. Each term is the same HKDF-SHA256 -> ChaCha20 stream as
:func:`~ssl_fed.secagg.prg.keystream_words` (keyed by all 256 bits of the secret, domain-separated
by ``info``), read in order: consecutive ``update_into`` calls continue one stream, so the words
added are byte for byte those of the one-shot reference (tests check it for fixed keys). Addition
mod ``2^b`` is associative and commutative, so neither the chunking nor the order of the terms
changes any result. Keystream bytes live only in the scratch buffer, overwritten on every read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.prg import chacha_stream

CHUNK_BYTES = 1 << 18
"""Bytes of output handled per step: the chunk and the scratch keystream stay in L2 cache."""

_ZEROS = bytes(CHUNK_BYTES)


@dataclass(frozen=True)
class MaskTerm:
    """One signed mask ``sign * PRG(secret)`` under the domain-separation string ``info``."""

    secret: bytes
    info: bytes
    sign: int

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"a mask term's sign is +1 or -1, got {self.sign}")
        if len(self.secret) != 32:
            raise ValueError(f"mask secrets are 32 bytes, got {len(self.secret)}")


def apply_masks(
    out: NDArray[np.unsignedinteger[Any]],
    terms: Sequence[MaskTerm],
    addends: Sequence[NDArray[np.unsignedinteger[Any]]] = (),
) -> None:
    """Add ``Σ addends + Σ sign * PRG(secret, info)`` to ``out`` modulo ``2^b``, in place.

    Parameters
    ----------
    out : NDArray[np.unsignedinteger]
        1-D C-contiguous ``uint{b}`` vector, overwritten with the result (no copy is made).
    terms : Sequence[MaskTerm]
        Keystream masks; the words of each are those of ``keystream_words(secret, info, len(out),
        out.dtype)``.
    addends : Sequence[NDArray[np.unsignedinteger]]
        Vectors of ``out``'s dtype and shape added as they are (the server's masked inputs).
    """
    dtype = out.dtype
    if out.ndim != 1 or dtype.kind != "u" or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("the masked buffer must be a writable 1-D contiguous unsigned vector")
    if any(a.shape != out.shape or a.dtype != dtype for a in addends):
        raise ValueError(f"every addend must be {dtype}[{out.size}]")
    streams = [(chacha_stream(t.secret, t.info), t.sign > 0) for t in terms]
    scratch = np.empty(CHUNK_BYTES, dtype=np.uint8)
    raw, zeros = memoryview(scratch.data), memoryview(_ZEROS)
    words = scratch.view(dtype.newbyteorder("<"))
    step = CHUNK_BYTES // dtype.itemsize
    for start in range(0, out.size, step):
        seg = out[start : start + step]
        size, nbytes = seg.size, seg.nbytes
        for a in addends:
            np.add(seg, a[start : start + size], out=seg)
        for enc, plus in streams:
            enc.update_into(zeros[:nbytes], raw[:nbytes])  # type: ignore[arg-type]
            if plus:
                np.add(seg, words[:size], out=seg)
            else:
                np.subtract(seg, words[:size], out=seg)
