import numpy as np

from ssl_fed.secagg.quantize import decode_mean, encode_weighted, quantization_bound


def test_encode_hand_computed() -> None:
    # Prepare: c=1, q=2 -> 3 steps of 2/3: -1 -> 0, 0 -> rint(1.5)=2, 1 -> 3, 5 clips to 1 -> 3;
    # then the clip count (one value, 5, was clipped) and the weight.
    x = np.array([-1.0, 0.0, 1.0, 5.0])
    # Execute
    enc = encode_weighted(x, 2, clip_range=1.0, value_bits=2, word_bits=16)
    # Assert
    assert enc.dtype == np.uint16
    assert enc.tolist() == [0, 4, 6, 6, 1, 2]


def test_decoded_weighted_mean_is_within_stated_bound() -> None:
    # Prepare
    rng = np.random.default_rng(1)
    xs = [rng.uniform(-3, 3, 1000) for _ in range(7)]
    ws = [int(w) for w in rng.integers(0, 50, 7)]
    ws[0] = max(ws[0], 1)
    # Execute
    total = sum(encode_weighted(x, w, 3.0, 12, 32) for x, w in zip(xs, ws, strict=True))
    mean, weight, clipped = decode_mean(np.asarray(total, dtype=np.uint32), 3.0, 12)
    # Assert
    exact = sum(x * w for x, w in zip(xs, ws, strict=True)) / sum(ws)
    assert weight == sum(ws)
    assert clipped == 0
    assert np.abs(mean - exact).max() <= quantization_bound(3.0, 12) + 1e-12
    assert quantization_bound(3.0, 12) == 3.0 / 4095
