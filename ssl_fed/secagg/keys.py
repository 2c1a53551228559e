"""Key agreement, share encryption, Shamir sharing and seed commitments for SecAgg+.

Primitives (Bell et al., CCS 2020, §3, building on Bonawitz et al., CCS 2017):

- key agreement: X25519; each site holds one pair for masks ``(s^PK, s^SK)`` and one for
  encrypting shares ``(c^PK, c^SK)``, both fresh per round;
- authenticated encryption: ChaCha20-Poly1305 under ``HKDF(X25519(c_i^SK, c_j^PK))`` with
  ``info`` = (version, round, "share-enc", sender, receiver), so each direction of each pair has
  its own key, and associated data binding the same fields: a ciphertext replayed to another
  receiver, round or claimed sender fails authentication;
- secret sharing: Shamir t-of-m over GF(2^128) (:mod:`ssl_fed.secagg.shamir`, byte-compatible
  with Flower's helpers; a 32-byte secret gives 52-byte shares: 4-byte index + three 16-byte
  chunk shares);
- seed commitments: SHA-256 of (version, round, id, b_i), published at advertise time so the
  server can tell a correctly reconstructed self-mask seed from one corrupted by a bad share.
  ``b_i`` is a uniform 256-bit string, so the hash reveals nothing usable about it.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ssl_fed.secagg.params import PROTOCOL_VERSION
from ssl_fed.secagg.prg import derive_info, hkdf
from ssl_fed.secagg.shamir import combine_shares, create_shares

KEY_BYTES = 32
SHARE_BYTES = 52
NONCE_BYTES = 12
PAIR_PLAINTEXT_BYTES = 2 * SHARE_BYTES
PAIR_CIPHERTEXT_BYTES = NONCE_BYTES + PAIR_PLAINTEXT_BYTES + 16


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh X25519 ``(secret_key, public_key)`` as raw 32-byte strings."""
    sk = X25519PrivateKey.generate()
    return sk.private_bytes_raw(), sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_from_secret(sk: bytes) -> bytes:
    """Return the X25519 public key of a raw 32-byte secret key."""
    key = X25519PrivateKey.from_private_bytes(sk).public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def agree(sk: bytes, pk: bytes) -> bytes:
    """X25519 shared secret; raises ``ValueError`` for malformed or low-order public keys."""
    if len(sk) != KEY_BYTES or len(pk) != KEY_BYTES:
        raise ValueError("X25519 keys are 32 bytes")
    priv = X25519PrivateKey.from_private_bytes(sk)
    return priv.exchange(X25519PublicKey.from_public_bytes(pk))


def _pair_key(sk: bytes, pk: bytes, round_id: bytes, sender: int, receiver: int) -> bytes:
    return hkdf(agree(sk, pk), derive_info(round_id, "share-enc", sender, receiver))


def _ad(round_id: bytes, sender: int, receiver: int) -> bytes:
    return PROTOCOL_VERSION.encode() + round_id + struct.pack(">QQ", sender, receiver)


def encrypt_pair(
    sk_c: bytes, peer_pk_c: bytes, round_id: bytes, sender: int, receiver: int, plaintext: bytes
) -> bytes:
    """Encrypt ``plaintext`` from ``sender`` to ``receiver``: ``nonce || ChaCha20-Poly1305``."""
    nonce = os.urandom(NONCE_BYTES)
    aead = ChaCha20Poly1305(_pair_key(sk_c, peer_pk_c, round_id, sender, receiver))
    return nonce + aead.encrypt(nonce, plaintext, _ad(round_id, sender, receiver))


def decrypt_pair(
    sk_c: bytes, peer_pk_c: bytes, round_id: bytes, sender: int, receiver: int, blob: bytes
) -> bytes:
    """Inverse of :func:`encrypt_pair`; raises ``ValueError`` if the blob is not authentic."""
    if len(blob) != PAIR_CIPHERTEXT_BYTES:
        raise ValueError(f"share ciphertext must be {PAIR_CIPHERTEXT_BYTES} bytes, got {len(blob)}")
    aead = ChaCha20Poly1305(_pair_key(sk_c, peer_pk_c, round_id, sender, receiver))
    try:
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _ad(round_id, sender, receiver))
    except InvalidTag as err:
        raise ValueError(f"share ciphertext from {sender} failed authentication") from err


def commit_seed(round_id: bytes, node_id: int, seed: bytes) -> bytes:
    """SHA-256 commitment to a site's self-mask seed ``b_i``."""
    return hashlib.sha256(derive_info(round_id, "seed-commit", node_id) + seed).digest()


def split_secret(secret: bytes, threshold: int, num: int) -> list[bytes]:
    """Split ``secret`` into ``num`` shares (indices 1..num); any ``threshold`` recover it."""
    return create_shares(secret, threshold, num)


def share_index(share: bytes) -> int:
    """Read the 1-based Shamir x-coordinate from the first 4 bytes of a share."""
    return int.from_bytes(share[:4], "little")


def combine_secret(shares: list[bytes]) -> bytes:
    """Reconstruct a secret from shares with distinct indices; ``ValueError`` if inconsistent."""
    try:
        return combine_shares(shares)
    except (ValueError, IndexError) as err:
        raise ValueError(f"Shamir reconstruction failed: {err}") from err
