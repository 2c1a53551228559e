import contextlib

import pytest

from ssl_fed.secagg import keys

RID = b"\x01" * 16


def test_share_ciphertext_binds_round_sender_and_receiver() -> None:
    # Prepare
    sk_a, pk_a = keys.generate_keypair()
    sk_b, pk_b = keys.generate_keypair()
    pt = bytes(range(keys.PAIR_PLAINTEXT_BYTES))
    # Execute
    ct = keys.encrypt_pair(sk_a, pk_b, RID, 1, 2, pt)
    # Assert
    assert len(ct) == keys.PAIR_CIPHERTEXT_BYTES
    assert keys.decrypt_pair(sk_b, pk_a, RID, 1, 2, ct) == pt
    for rid, src, dst in [(b"\x02" * 16, 1, 2), (RID, 3, 2), (RID, 1, 3)]:
        with pytest.raises(ValueError, match="authentication"):
            keys.decrypt_pair(sk_b, pk_a, rid, src, dst, ct)
    with pytest.raises(ValueError, match="authentication"):
        keys.decrypt_pair(sk_b, pk_a, RID, 1, 2, ct[:-1] + bytes([ct[-1] ^ 1]))


def test_shamir_any_t_of_m_recover_and_fewer_do_not() -> None:
    secret = bytes(range(32))
    shares = keys.split_secret(secret, 3, 5)
    assert [keys.share_index(s) for s in shares] == [1, 2, 3, 4, 5]
    assert all(len(s) == keys.SHARE_BYTES for s in shares)
    assert keys.combine_secret(shares[2:]) == secret
    assert keys.combine_secret([shares[0], shares[2], shares[4]]) == secret
    with contextlib.suppress(ValueError):
        assert keys.combine_secret(shares[:2]) != secret


def test_low_order_public_key_is_rejected() -> None:
    sk, _ = keys.generate_keypair()
    with pytest.raises(ValueError):
        keys.agree(sk, bytes(32))
