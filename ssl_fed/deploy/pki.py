"""Certificates and keys for a deployment, made with the ``cryptography`` package.

* The operator's **CA** (RSA-3072, 5 years) signs the **SuperLink's TLS certificate** (RSA-3072,
  1 year, SANs for the given DNS names and IPs, EKU serverAuth). Sites receive only ``ca.crt``.
* Each **site** makes its own node-authentication key pair (ECDSA P-384, private key in OpenSSH
  format, public key as one ``ecdsa-sha2-nistp384`` line), as flwr 1.42's SuperNode
  authentication expects. Only the public key ever leaves the site; the operator enrolls it.

Private keys are written with mode 0600, created that way (never world-readable for an instant),
and an existing key is never overwritten: rotating a key is an explicit, documented step.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSA_BITS = 3072
CA_DAYS = 5 * 365
SERVER_DAYS = 365


class PkiError(ValueError):
    """A PKI file would be overwritten, or an input is malformed."""


@dataclass(frozen=True)
class PkiPaths:
    """What ``pki init`` wrote."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _write_private(path: Path, data: bytes) -> None:
    if path.exists():
        raise PkiError(
            f"{path} exists; refusing to overwrite a private key. Move it away first if you "
            "really mean to replace it (see the key-rotation steps in docs/deployment.md)."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject_alt_names(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def init_pki(out: str | Path, hosts: list[str], *, org: str = "ssl-fed") -> PkiPaths:
    """Create a CA and a SuperLink certificate for ``hosts`` (DNS names or IPs) under ``out``."""
    if not hosts:
        raise PkiError("give at least one host name or IP for the server certificate's SANs")
    out = Path(out)
    paths = PkiPaths(out / "ca.crt", out / "ca.key", out / "server.pem", out / "server.key")
    for key_path in (paths.ca_key, paths.server_key):
        if key_path.exists():
            raise PkiError(f"{key_path} exists; refusing to overwrite an existing PKI in {out}")
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org} federation CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(_subject_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(paths.ca_key, _pem_key(ca_key))
    _write_private(paths.server_key, _pem_key(server_key))
    _write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_public(paths.server_cert, server_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def site_keygen(out: str | Path, name: str = "site") -> tuple[Path, Path]:
    """Create a site's ECDSA P-384 node-auth key pair: ``<name>_key`` (0600) and ``.pub``."""
    out = Path(out)
    private_path, public_path = out / f"{name}_key", out / f"{name}_key.pub"
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_public(public_path, public + b"\n")
    return private_path, public_path


def read_public_key(path: str | Path) -> bytes:
    """Load and check a site's public key file; refuse anything but ECDSA P-384 OpenSSH."""
    data = Path(path).read_bytes().strip()
    try:
        key = serialization.load_ssh_public_key(data)
    except ValueError as err:
        raise PkiError(f"{path} is not an OpenSSH public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise PkiError(
            f"{path}: node keys must be ECDSA P-384 (make one with `ssl-fed site keygen`)"
        )
    return data
