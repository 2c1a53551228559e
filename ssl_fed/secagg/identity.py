"""Signing identities against a malicious server: signed keys and the consistency check.

Bonawitz et al., CCS 2017, §4.2 and Fig. 4; Bell et al., CCS 2020, §4 (SecAgg+, active security).

Against an honest-but-curious server the protocol needs no signatures. A server that *deviates*
could (1) substitute a site's advertised public keys with its own, so that the shares other sites
encrypt "to" that site are readable by the server, or (2) show sites different views of who
survived, so that some neighbours of a site reveal its self-mask seed and others its mask key.
Both are closed here:

- **signed keys**: each site signs ``(setup digest, node id, c^PK, s^PK, commitment)`` with a
  long-term key; a site accepts a neighbour's keys only if the signature verifies under a key in
  its own **roster** of trusted site keys (and each roster key stands for one node only);
- **consistency check**: after the masked inputs, every survivor signs
  ``(setup digest, its node id, U3)``, the survivor set it was shown; a site reveals unmask shares
  only if the server presents at least ``min_survivors`` valid, distinct roster signatures on the
  *same* ``U3`` it signed itself, and its own survivor/dropped lists agree with ``U3``.

The setup digest binds every signature to one round setup (participants, graph seed, threshold),
so the server cannot show different sites different graphs either.

Notes
-----
Guarantee: with an honest roster and honest sites, a deviating server obtains, for each site,
either its self-mask seed or its mask key, never both (each honest site signs one ``U3`` and
reveals by it), so it learns nothing beyond sums of at least ``min_survivors`` inputs
(Bonawitz et al. Thm. 6.5, adapted to SecAgg+ neighbourhoods by Bell et al. §4).
Trust rests on the roster: whoever writes it decides which keys count as sites. In simulation
the runner generates one key per site (:func:`generate_identities`); in deployment a site's key
is its enrolled node key and the roster is the list of enrolled public keys, which the site
operators must obtain from each other, not from the server.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ssl_fed.secagg.params import PROTOCOL_VERSION
from ssl_fed.secagg.prg import derive_info, hkdf

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
MAX_SIGNATURE_BYTES = 256


def public_bytes(key: SigningKey) -> bytes:
    """DER SubjectPublicKeyInfo of ``key``'s public half (the form rosters hold)."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` on ``message`` verifies under DER ``public`` (Ed25519 or ECDSA)."""
    try:
        key = serialization.load_der_public_key(public)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA384()))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class SiteIdentity:
    """A site's long-term signing key and which site keys it trusts.

    ``roster``: public keys of every site (deployment; a key may sign for any one node id).
    ``secret``: a simulation-wide secret from which node ``j``'s key is derived
    (:func:`derived_identity`); then a signer is trusted for node ``j`` only if it is ``j``'s key.
    """

    key: SigningKey
    roster: frozenset[bytes] = frozenset()
    secret: bytes | None = None

    def trusts(self, node_id: int, public: bytes) -> bool:
        """Whether ``public`` may sign for ``node_id``."""
        if public in self.roster:
            return True
        return self.secret is not None and public == _derived_key(self.secret, node_id)[1]

    @property
    def public(self) -> bytes:
        """Return the site's public key (DER)."""
        return public_bytes(self.key)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (Ed25519, or ECDSA P-384 with SHA-384 for node keys)."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(message)
        return self.key.sign(message, ec.ECDSA(hashes.SHA384()))


def generate_identities(count: int) -> list[SiteIdentity]:
    """Fresh Ed25519 identities sharing one roster (simulations and tests)."""
    keys = [ed25519.Ed25519PrivateKey.generate() for _ in range(count)]
    roster = frozenset(public_bytes(k) for k in keys)
    return [SiteIdentity(k, roster) for k in keys]


def _derived_key(secret: bytes, node_id: int) -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    seed = hkdf(secret, derive_info(b"\x00" * 16, "site-signing", node_id), 32)
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return key, public_bytes(key)


def derived_identity(secret: bytes, node_id: int) -> SiteIdentity:
    """Node ``node_id``'s identity in a simulation whose sites share ``secret`` (the server not).

    Every virtual site derives its own Ed25519 key and its peers' public keys from the secret, so
    no roster has to be distributed; the server, which never sees the secret, can neither forge a
    site's signature nor pass one site's key off as another's. All virtual sites run in one trust
    domain, so this models a deviating server, not deviating sites.
    """
    return SiteIdentity(_derived_key(secret, node_id)[0], secret=secret)


def load_identity(private_key: Path, roster: list[Path]) -> SiteIdentity:
    """Load a site's OpenSSH node key and the OpenSSH public keys of every enrolled site."""
    key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{private_key}: a signing key must be Ed25519 or ECDSA")
    trusted = set()
    for path in roster:
        pub = serialization.load_ssh_public_key(path.read_bytes().strip())
        trusted.add(pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ))  # fmt: skip
    return SiteIdentity(key, frozenset(trusted | {public_bytes(key)}))


def _frame(tag: str, digest: bytes, node_id: int, *parts: bytes) -> bytes:
    head = f"{PROTOCOL_VERSION}|{tag}|".encode() + digest + struct.pack(">Q", node_id)
    return head + b"".join(struct.pack(">I", len(p)) + p for p in parts)


def advert_message(digest: bytes, node_id: int, pk_c: bytes, pk_s: bytes, commit: bytes) -> bytes:
    """Frame what a site signs at advertise time: its round keys and commitment, for one setup."""
    return _frame("advertise", digest, node_id, pk_c, pk_s, commit)


def survivors_message(digest: bytes, node_id: int, survivors: bytes) -> bytes:
    """Frame what a survivor signs in the consistency check: the packed set ``U3`` it saw."""
    return _frame("consistency", digest, node_id, hashlib.sha256(survivors).digest())


def check_signers(identity: SiteIdentity, signers: list[tuple[int, bytes]], what: str) -> None:
    """Raise ``ValueError`` unless each (node, signer) is trusted and no key signs for two nodes."""
    if len({s for _, s in signers}) != len(signers):
        raise ValueError(f"{what}: one site key signs for two nodes")
    if not all(identity.trusts(j, s) for j, s in signers):
        raise ValueError(f"{what}: a signer is not on this site's roster")


def check_adverts(
    identity: SiteIdentity,
    digest: bytes,
    ids: list[int],
    keys: list[tuple[bytes, bytes, bytes]],
    signed: list[tuple[bytes, bytes]],
) -> None:
    """Check each neighbour's ``(c^PK, s^PK, commitment)`` against its roster signature.

    A substituted key (or a neighbour that saw another setup) fails here, before any share is
    encrypted to it.
    """
    if any(s == identity.public for s, _ in signed):
        raise ValueError("share request: a neighbour's keys are signed with my own key")
    check_signers(identity, [(j, s) for j, (s, _) in zip(ids, signed, strict=True)], "share")
    for j, (pk_c, pk_s, commit), (signer, sig) in zip(ids, keys, signed, strict=True):
        if not verify(signer, advert_message(digest, j, pk_c, pk_s, commit), sig):
            raise ValueError(f"keys of site {j} carry no valid signature (substituted key?)")


def check_consistency(
    identity: SiteIdentity,
    digest: bytes,
    survivors: bytes,
    signed: dict[int, tuple[bytes, bytes]],
    minimum: int,
) -> None:
    """Check at least ``minimum`` distinct roster signatures on the same packed ``survivors``."""
    if len(signed) < minimum:
        raise ValueError(f"only {len(signed)} consistency signatures, need {minimum}")
    check_signers(identity, [(j, s) for j, (s, _) in signed.items()], "consistency check")
    for j, (signer, sig) in signed.items():
        if not verify(signer, survivors_message(digest, j, survivors), sig):
            raise ValueError(f"site {j} did not sign this survivor set (inconsistent views)")
