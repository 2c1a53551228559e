"""PKI: a CA-signed server certificate with the right SANs, 0600 keys, no overwrites."""

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ssl_fed.deploy.pki import PkiError, init_pki, read_public_key, site_keygen


def test_pki_init_writes_a_ca_signed_server_cert_with_sans(tmp_path):
    # Execute
    paths = init_pki(tmp_path, ["127.0.0.1", "fl.example.org"])

    # Assert: signed by the CA, SANs present, keys private
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    ca.public_key().verify(
        server.signature,
        server.tbs_certificate_bytes,
        padding.PKCS1v15(),
        server.signature_hash_algorithm,
    )
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "fl.example.org" in sans.get_values_for_type(x509.DNSName)
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_pki_init_refuses_to_overwrite(tmp_path):
    init_pki(tmp_path, ["127.0.0.1"])
    with pytest.raises(PkiError, match="overwrite"):
        init_pki(tmp_path, ["127.0.0.1"])


def test_site_keygen_makes_a_p384_openssh_pair(tmp_path):
    # Execute
    private, public = site_keygen(tmp_path, "clinic")

    # Assert
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert b"OPENSSH PRIVATE KEY" in private.read_bytes()
    assert read_public_key(public).startswith(b"ecdsa-sha2-nistp384")


def test_a_non_p384_public_key_is_refused(tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / "k.pub"
    path.write_bytes(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    with pytest.raises(PkiError, match="P-384"):
        read_public_key(path)
