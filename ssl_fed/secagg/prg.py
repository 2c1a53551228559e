"""Full-strength mask expansion: HKDF-SHA256 -> ChaCha20 keystream -> uint words.

Every mask ``PRG(seed)`` of SecAgg+ (Bell et al., CCS 2020, §3, "PRG") is the ChaCha20 keystream
under a key and nonce derived by HKDF-SHA256 from the full 256-bit secret (a self-mask seed ``b_i``
or an X25519 shared secret ``s_ij``), with ``info`` binding protocol version, round id, purpose and
the site ids. So no keystream is reused across rounds, pairs or purposes.

Notes
-----
Flower 1.42's ``pseudo_rand_gen`` XOR-folds its key to a 32-bit seed for numpy's MT19937, leaving
2**32 candidate masks per pair: an attacker who sees a masked vector can brute-force it. Here the
stream depends on all 256 key bits; the bytes are reinterpreted as little-endian words with
a zero-copy view (no per-element Python work); each word is ``b`` uniform keystream bits, so it is
uniform on ``Z_{2^b}``.
"""

from __future__ import annotations

import struct

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from ssl_fed.secagg.params import PROTOCOL_VERSION

_ZEROS = np.zeros(0, dtype=np.uint8)


def derive_info(round_id: bytes, purpose: str, *ids: int) -> bytes:
    """Domain-separation string: version | round id | purpose | 8-byte big-endian ids."""
    head = f"{PROTOCOL_VERSION}|{purpose}|".encode()
    return head + round_id + b"".join(struct.pack(">Q", i) for i in ids)


def hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) without salt: the secrets are already uniform 256-bit strings."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def chacha_stream(secret: bytes, info: bytes) -> CipherContext:
    """Open the ChaCha20 keystream of ``PRG(secret)`` under ``info``; read it with ``update_into``.

    The 16-byte ChaCha20 IV is a zero 32-bit block counter followed by a derived 96-bit nonce,
    so a stream of up to 256 GB never wraps the counter. Successive ``update_into`` calls continue
    the one stream, so reading it in chunks yields exactly the bytes of one long read.
    """
    if len(secret) != 32:
        raise ValueError(f"mask secrets are 32 bytes, got {len(secret)}")
    okm = hkdf(secret, info, 44)
    cipher = Cipher(algorithms.ChaCha20(okm[:32], b"\0\0\0\0" + okm[32:44]), mode=None)
    return cipher.encryptor()


def keystream_words(
    secret: bytes, info: bytes, length: int, dtype: type[np.unsignedinteger]
) -> NDArray[np.unsignedinteger]:
    """Return ``length`` words of ``dtype`` from ChaCha20 keyed by ``HKDF(secret, info)``.

    One-shot read of :func:`chacha_stream` into a fresh array: the reference the streaming
    masker (:mod:`ssl_fed.secagg.stream`) is tested against, and the way tests strip one mask.
    """
    global _ZEROS
    nbytes = length * np.dtype(dtype).itemsize
    if _ZEROS.size < nbytes:
        _ZEROS = np.zeros(nbytes, dtype=np.uint8)
    out = np.empty(nbytes, dtype=np.uint8)
    enc = chacha_stream(secret, info)
    enc.update_into(memoryview(_ZEROS.data)[:nbytes], memoryview(out.data))  # type: ignore[arg-type]
    return out.view(np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False)
