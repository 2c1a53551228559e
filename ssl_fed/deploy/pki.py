"""Certificates and keys for a deployment, made with the ``cryptography`` package.

* The operator's **CA** (RSA-3072, 5 years) signs the **SuperLink's TLS certificate** (RSA-3072,
  1 year, SANs for the given DNS names and IPs, EKU serverAuth). Sites receive only ``ca.crt``.
* Each **site** makes its own node-authentication key pair (ECDSA P-384, private key in OpenSSH
  format, public key as one ``ecdsa-sha2-nistp384`` line), as flwr 1.42's SuperNode
  authentication expects. Only the public key ever leaves the site; the operator enrolls it.

Private keys are written with mode 0600, created that way (never world-readable for an instant),
and an existing key is never overwritten: rotating a key is an explicit, documented step.

The CA key is written to its own folder (default ``<out>-ca-offline/``), never beside the files the
server reads: whoever holds it can certify a fake SuperLink to every site. Move that folder
offline; ``ssl-fed server start`` refuses to run while it finds the CA key in the PKI or state
folder (:func:`find_ca_key`). The server certificate always covers 127.0.0.1 and localhost too,
because the SuperLink itself listens only on loopback behind the gateway (:mod:`.gateway`).
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
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
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


def default_ca_dir(out: Path) -> Path:
    """Where ``pki init`` puts the CA key unless told: a sibling folder, to be moved offline."""
    return out.parent / f"{out.name}-ca-offline"


def init_pki(
    out: str | Path, hosts: list[str], *, org: str = "ssl-fed", ca_dir: str | Path | None = None
) -> PkiPaths:
    """Create a CA and a SuperLink certificate for ``hosts`` (DNS names or IPs) under ``out``.

    The CA key goes to ``ca_dir`` (default :func:`default_ca_dir`), which must differ from ``out``.
    """
    if not hosts:
        raise PkiError("give at least one host name or IP for the server certificate's SANs")
    out = Path(out)
    key_dir = Path(ca_dir) if ca_dir is not None else default_ca_dir(out)
    if key_dir.resolve() == out.resolve():
        raise PkiError(f"--ca-dir {key_dir} must not be the PKI folder the server reads")
    hosts = list(dict.fromkeys([*hosts, *LOOPBACK_HOSTS]))
    paths = PkiPaths(out / "ca.crt", key_dir / "ca.key", out / "server.pem", out / "server.key")
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


def find_ca_key(folders: list[Path], ca_cert: Path) -> Path | None:
    """Return a file in ``folders`` (not recursive) that holds the private key of ``ca_cert``.

    Matches by public key, not by name, so a renamed ``ca.key`` is found too. Only small regular
    files are read.
    """
    ca_public = x509.load_pem_x509_certificate(ca_cert.read_bytes()).public_key()
    want = ca_public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name == "ca.key":
                return path
            if not path.is_file() or path.stat().st_size > 64 * 1024:
                continue
            data = path.read_bytes()
            if b"PRIVATE KEY" not in data:
                continue
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError):
                continue
            got = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if got == want:
                return path
    return None
