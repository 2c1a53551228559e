"""Shamir t-of-m secret sharing over GF(2^128), byte-compatible with Flower 1.42's helpers.

Shamir ("How to share a secret", CACM 1979): a secret is the constant term of a random
polynomial of degree ``t - 1``; share ``i`` is its value at ``x = i``; any ``t`` shares rebuild it
by Lagrange interpolation and fewer reveal nothing. PyCryptodome's ``Shamir`` works on 16-byte
blocks in GF(2^128), so the secret is PKCS#7-padded to whole blocks and each block is shared on
its own. The wire format is the one ``flwr.common.secure_aggregation.crypto.shamir`` uses, so a
site running an older ssl-fed can still rebuild shares from this one: ``<4-byte little-endian
index><16-byte share of block 1><16-byte share of block 2>...`` (a 32-byte secret pads to 48
bytes: 52-byte shares). Kept here so that :mod:`ssl_fed.secagg` needs no Flower import.
"""

from __future__ import annotations

from Crypto.Protocol.SecretSharing import Shamir
from Crypto.Util.Padding import pad, unpad

BLOCK = 16
INDEX_BYTES = 4


def create_shares(secret: bytes, threshold: int, num: int) -> list[bytes]:
    """Split ``secret`` into ``num`` shares (indices 1..num); any ``threshold`` rebuild it."""
    padded = pad(secret, BLOCK)
    shares = [bytearray(i.to_bytes(INDEX_BYTES, "little")) for i in range(1, num + 1)]
    for start in range(0, len(padded), BLOCK):
        for idx, part in Shamir.split(threshold, num, padded[start : start + BLOCK], ssss=False):
            shares[idx - 1] += part
    return [bytes(s) for s in shares]


def combine_shares(shares: list[bytes]) -> bytes:
    """Rebuild the secret from shares with distinct indices; ``ValueError`` if they disagree."""
    blocks = (len(shares[0]) - INDEX_BYTES) // BLOCK
    padded = bytearray()
    for b in range(blocks):
        start = INDEX_BYTES + b * BLOCK
        parts = [
            (int.from_bytes(s[:INDEX_BYTES], "little"), s[start : start + BLOCK]) for s in shares
        ]
        padded += Shamir.combine(parts, ssss=False)
    try:
        return unpad(bytes(padded), BLOCK)
    except ValueError:
        raise ValueError("Failed to combine shares") from None
