import numpy as np
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

from ssl_fed.secagg.prg import derive_info, keystream_words

KEY = bytes(range(32))
INFO = derive_info(b"r" * 16, "pair-mask", 1, 2)


def test_stream_is_deterministic_and_vectorised_words() -> None:
    a = keystream_words(KEY, INFO, 1000, np.uint32)
    assert a.dtype == np.uint32 and a.shape == (1000,)
    assert np.array_equal(a, keystream_words(KEY, INFO, 1000, np.uint32))
    assert np.array_equal(keystream_words(KEY, INFO, 10, np.uint32), a[:10])


def test_two_keys_give_unrelated_streams() -> None:
    # Unrelated: equal words about 1000/2^32 ~ 0 times, bits agree about half the time.
    a = keystream_words(KEY, INFO, 4096, np.uint32)
    b = keystream_words(bytes(reversed(KEY)), INFO, 4096, np.uint32)
    agree = np.unpackbits((~(a ^ b)).view(np.uint8)).mean()
    assert int((a == b).sum()) == 0
    assert 0.48 < agree < 0.52


def test_flipping_any_key_byte_changes_the_stream() -> None:
    base = keystream_words(KEY, INFO, 64, np.uint32)
    for pos in range(32):
        key = bytearray(KEY)
        key[pos] ^= 0x01
        assert (keystream_words(bytes(key), INFO, 64, np.uint32) != base).mean() > 0.9


def test_round_pair_and_purpose_separate_streams() -> None:
    infos = [
        INFO,
        derive_info(b"s" * 16, "pair-mask", 1, 2),
        derive_info(b"r" * 16, "pair-mask", 1, 3),
        derive_info(b"r" * 16, "self-mask", 1),
    ]
    streams = [keystream_words(KEY, i, 64, np.uint32).tobytes() for i in infos]
    assert len(set(streams)) == 4


def test_stock_32bit_fold_collides_where_full_key_does_not() -> None:
    # Prepare: XOR the same 4 bytes into words 0 and 1 of the key: the stock XOR-fold to 32 bits
    # cancels the change, so both keys seed MT19937 identically.
    other = bytearray(KEY)
    for pos in range(4):
        other[pos] ^= 0xA5
        other[4 + pos] ^= 0xA5
    k2 = bytes(other)
    # Execute
    stock1 = pseudo_rand_gen(KEY, 1 << 22, [(100,)])[0]
    stock2 = pseudo_rand_gen(k2, 1 << 22, [(100,)])[0]
    ours1 = keystream_words(KEY, INFO, 100, np.uint32)
    ours2 = keystream_words(k2, INFO, 100, np.uint32)
    # Assert
    assert k2 != KEY
    assert np.array_equal(stock1, stock2)
    assert (ours1 != ours2).mean() > 0.9
