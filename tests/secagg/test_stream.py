"""Streaming masks, chunked encoding and .npy framing against the one-shot reference code."""

from typing import Any

import numpy as np
import pytest
from flwr.app import Array

from ssl_fed.secagg import AggregateResult, SecAggConfig, client, keys, run_local_round
from ssl_fed.secagg.params import resolve_round
from ssl_fed.secagg.prg import derive_info, keystream_words
from ssl_fed.secagg.quantize import (
    ENCODE_CHUNK,
    decode_mean,
    encode_weighted,
    encode_weighted_into,
)
from ssl_fed.secagg.server import SecAggServer
from ssl_fed.secagg.setup import ArraySpec
from ssl_fed.secagg.stream import CHUNK_BYTES, MaskTerm, apply_masks
from ssl_fed.secagg.wire import ProtocolError, npy_bytes, npy_view

RID = b"r" * 16
IDS = [11, 22, 33, 44, 55]
# 70,003 values: crosses the 65,536-word mask chunk (uint32) and the 32,768-value encode chunk.
BIG: ArraySpec = [("w", (70_000,)), ("b", (3,))]


def _reference_mask(state: client.ClientState, encoded: np.ndarray, ids: list[int]) -> np.ndarray:
    """The pre-streaming site mask: one full keystream array per term, added with a copy."""
    setup, me = state.round_setup(), state.node_id
    y = encoded.copy()
    y += keystream_words(
        bytes.fromhex(state.seed), derive_info(RID, "self-mask", me), setup.length, setup.dtype
    )
    sk_s = bytes.fromhex(state.sk_s)
    for j in ids:
        shared = keys.agree(sk_s, bytes.fromhex(state.peers[str(j)][1]))
        info = derive_info(RID, "pair-mask", min(me, j), max(me, j))
        m = keystream_words(shared, info, setup.length, setup.dtype)
        y = y + m if me < j else y - m
    return y


def _inputs(spec: ArraySpec, seed: int) -> dict[int, tuple[dict[str, Any], int]]:
    rng = np.random.default_rng(seed)
    return {
        i: ({n: rng.uniform(-5, 5, s).astype(np.float32) for n, s in spec}, 7 * (k + 1))
        for k, i in enumerate(IDS)
    }


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_streamed_masks_equal_the_one_shot_reference(dtype: type[np.unsignedinteger]) -> None:
    # Prepare: a length that is not a multiple of the chunk, three signed terms, one addend.
    n = 2 * CHUNK_BYTES // np.dtype(dtype).itemsize + 37
    rng = np.random.default_rng(0)
    base = rng.integers(0, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    addend = rng.integers(0, np.iinfo(dtype).max, n, dtype=dtype, endpoint=True)
    terms = [MaskTerm(bytes([k]) * 32, derive_info(RID, "pair-mask", 1, k), s) for k, s in
             ((2, 1), (3, -1), (4, 1))]  # fmt: skip
    want = base + addend
    for t in terms:
        m = keystream_words(t.secret, t.info, n, dtype)
        want = want + m if t.sign > 0 else want - m
    # Execute
    got = base.copy()
    apply_masks(got, terms, [addend])
    # Assert: byte-identical
    assert got.tobytes() == want.tobytes()


def test_site_mask_is_byte_identical_to_the_reference_for_fixed_keys() -> None:
    # Prepare: a real round up to the masked-input stage (keys fixed once drawn).
    server = SecAggServer(IDS, BIG, SecAggConfig(clip_range=4.0), round_id=RID)
    inputs = _inputs(BIG, seed=1)
    states, reps = {}, {}
    for i, p in server.advertise_requests().items():
        states[i], reps[i] = client.advertise(i, p)
    server.accept_advertise(reps)
    reps = {}
    for i, p in server.share_requests().items():
        states[i], reps[i] = client.share(states[i], p)
    server.accept_shares(reps)
    for i, p in server.collect_requests().items():
        encoded = server.setup.encode(*inputs[i])
        want = _reference_mask(states[i], encoded, server.forwarded[i])
        # Execute
        _, rep = client.mask(states[i], p, encoded)
        # Assert
        assert rep["masked"].tobytes() == want.tobytes()


def test_chunked_encoding_equals_the_whole_vector_reference() -> None:
    # Prepare: mixed dtypes, values beyond the clip, more than one encode chunk.
    rng = np.random.default_rng(2)
    parts = [
        ("a", rng.uniform(-6, 6, (ENCODE_CHUNK + 5, 2)).astype(np.float32)),
        ("b", rng.normal(0, 3, 17)),
        ("c", rng.integers(-9, 9, 11).astype(np.int16)),
    ]
    flat = np.concatenate([p.ravel() for _, p in parts])
    for word_bits, q in ((16, 7), (32, 18), (64, 40)):
        want = encode_weighted(flat, 13, 4.0, q, word_bits)
        got = np.empty_like(want)
        # Execute
        encode_weighted_into(got, parts, 13, 4.0, q)
        # Assert: same words, including the clip count and the weight
        assert got.tobytes() == want.tobytes()
        assert int(got[-2]) == int(np.count_nonzero(np.abs(flat) > 4.0)) > 0


def test_chunked_encoding_names_the_array_with_nan() -> None:
    bad = np.zeros(ENCODE_CHUNK + 3)
    bad[-1] = np.nan
    out = np.empty(bad.size + 4, np.uint32)
    with pytest.raises(ValueError, match="array 'late' holds NaN or inf"):
        encode_weighted_into(out, [("ok", np.zeros(2)), ("late", bad)], 1, 1.0, 8)


def test_aggregate_with_a_dropout_equals_the_hand_computed_sum() -> None:
    # Prepare: site 33 drops after sharing keys, so its pair masks must be removed by the
    # server; the expected sum is the survivors' reference encodings added up mod 2^b.
    inputs = _inputs(BIG, seed=3)
    cfg = SecAggConfig(clip_range=4.0)
    shape = resolve_round(len(IDS), cfg)
    survivors = [i for i in IDS if i != 33]
    dtype = {16: np.uint16, 32: np.uint32, 64: np.uint64}[shape.word_bits]
    total = np.zeros(70_005, dtype=dtype)
    for i in survivors:
        arrays, w = inputs[i]
        flat = np.concatenate([arrays["w"], arrays["b"]])
        total += encode_weighted(flat, w, 4.0, shape.value_bits, shape.word_bits)
    mean, weight, clipped = decode_mean(total, 4.0, shape.value_bits)
    # Execute
    res = run_local_round(inputs, BIG, cfg, drop={33: "collect"})
    # Assert: bit-identical decoded mean, exact weight and clip count
    assert isinstance(res, AggregateResult)
    assert res.survivors == survivors
    assert res.total_weight == weight == 7 * (1 + 2 + 4 + 5)
    assert res.clipped == clipped > 0
    assert np.array_equal(res.arrays["w"], mean[:70_000])
    assert np.array_equal(res.arrays["b"], mean[70_000:])


def test_npy_frame_matches_flower_and_reads_back_without_copy() -> None:
    # Prepare
    y = np.arange(1000, dtype=np.uint32) * 7919
    # Execute
    data = npy_bytes(y)
    view = npy_view(data)
    # Assert: the bytes Flower's Array(ndarray) stores, read back as a read-only view
    assert data == Array(y).data
    assert np.array_equal(view, y) and view.dtype == y.dtype
    assert not view.flags.writeable and not view.flags.owndata


@pytest.mark.parametrize(
    ("frame", "msg"),
    [
        (npy_bytes(np.arange(10, dtype=np.uint32))[:-1], "holds"),
        (b"not an npy frame at all", "malformed"),
        (npy_bytes(np.arange(4, dtype=np.uint8)).replace(b"'|u1'", b"'|O1'"), "malformed|plain"),
    ],
)
def test_malformed_npy_frame_is_a_protocol_error(frame: bytes, msg: str) -> None:
    with pytest.raises(ProtocolError, match=msg):
        npy_view(frame)
