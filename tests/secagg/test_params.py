import pytest

from ssl_fed.secagg.graph import build_neighbours
from ssl_fed.secagg.params import SecAggConfig, resolve_round


def test_defaults_for_five_and_ten_sites_are_hand_computed() -> None:
    # Prepare: n=5 -> k=min(4, 2*3)=4, t=3; q: (2^32-1)//5000+1 = 858994 -> 19 bits.
    # n=10 -> k=min(9, 8)=8, t=5; (2^32-1)//10000+1 = 429497 -> 18 bits.
    # Execute
    five, ten = resolve_round(5, SecAggConfig()), resolve_round(10, SecAggConfig())
    # Assert
    assert (five.k, five.t, five.value_bits, five.word_bits, five.min_survivors) == (
        4,
        3,
        19,
        32,
        3,
    )
    assert (ten.k, ten.t, ten.value_bits, ten.word_bits) == (8, 5, 18, 32)


def test_word_is_smallest_that_cannot_overflow() -> None:
    # 16 value bits + 3 sites x weight 1 -> 16 + 2 bits > 16 -> uint32; 10 bits fits uint16.
    assert resolve_round(3, SecAggConfig(value_bits=16, max_weight=1)).word_bits == 32
    assert resolve_round(3, SecAggConfig(value_bits=10, max_weight=1)).word_bits == 16
    assert resolve_round(3, SecAggConfig(value_bits=40, max_weight=1000)).word_bits == 64
    assert resolve_round(2000, SecAggConfig(max_weight=10**6)).word_bits == 64


@pytest.mark.parametrize(
    ("n", "cfg", "msg"),
    [
        (2, SecAggConfig(), "at least 3"),
        (10, SecAggConfig(threshold=4), "k/2 < t"),
        (10, SecAggConfig(num_neighbours=5), "even"),
        (10, SecAggConfig(num_neighbours=12), r"\[2, n-1\]"),
        (5, SecAggConfig(min_survivors=9), "min_survivors"),
        (3, SecAggConfig(value_bits=52, max_weight=10**6), "overflows"),
    ],
)
def test_bad_parameters_raise_with_reason(n: int, cfg: SecAggConfig, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        resolve_round(n, cfg)


def test_config_rejects_bad_clip_range() -> None:
    with pytest.raises(ValueError, match="clip_range"):
        SecAggConfig(clip_range=0.0)


def test_harary_graph_is_k_regular_symmetric_and_seeded() -> None:
    # Prepare
    ids = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38]
    # Execute
    g = build_neighbours(ids, 4, b"seed")
    # Assert
    assert all(len(v) == 4 and i not in v for i, v in g.items())
    assert all(i in g[j] for i, v in g.items() for j in v)
    assert g == build_neighbours(ids, 4, b"seed")
    assert g != build_neighbours(ids, 4, b"other seed")
    assert build_neighbours([1, 2, 3], 2, b"") == {1: [2, 3], 2: [1, 3], 3: [1, 2]}
