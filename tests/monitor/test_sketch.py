"""The reference sketch and drift statistic: definitions, sensitivity, thresholds."""

import math

import numpy as np
import pytest

from ssl_fed.monitor import FeatureMap, build_sketch, public_threshold, sensitivity


def _features(rng: np.random.Generator, n: int, d: int = 8, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, d)) + 1.0
    x[:, 0] += shift
    return x


def test_random_features_have_unit_norm_and_come_from_the_public_seed_alone() -> None:
    # Prepare
    rng = np.random.default_rng(1)
    x = _features(rng, 50)
    fmap = FeatureMap(8, num_features=16, bandwidth=0.7, seed=3)
    # Execute
    phi = fmap.transform(x)
    again = FeatureMap(8, num_features=16, bandwidth=0.7, seed=3).transform(x)
    # Assert: ||phi(x)|| = 1 exactly (cos^2 + sin^2 over D pairs, / D), the same map twice
    np.testing.assert_allclose(np.linalg.norm(phi, axis=1), 1.0, atol=1e-12)  # float64 trig
    np.testing.assert_array_equal(phi, again)


def test_statistic_matches_a_hand_computed_mean_embedding_distance() -> None:
    # Prepare: one-unit-at-a-time reference of the definition
    rng = np.random.default_rng(2)
    ref, fresh = _features(rng, 40), _features(rng, 10, shift=1.0)
    fmap = FeatureMap(8, num_features=4, bandwidth=0.5, seed=0)
    w = np.random.default_rng(0).normal(0.0, 1 / 0.5, size=(8, 4))

    def phi(v: np.ndarray) -> np.ndarray:
        u = v / np.linalg.norm(v)
        z = [sum(u[i] * w[i, j] for i in range(8)) for j in range(4)]
        return np.array([math.cos(t) for t in z] + [math.sin(t) for t in z]) / 2.0

    expected = np.linalg.norm(
        sum(phi(r) for r in ref) / len(ref) - sum(phi(f) for f in fresh) / len(fresh)
    )
    # Execute
    sketch = build_sketch(fmap, ref, window=10, draws=5)
    # Assert
    assert sketch.statistic(fresh) == pytest.approx(expected, rel=1e-5)  # float32 projection


def test_one_image_moves_the_statistic_by_at_most_the_stated_sensitivity() -> None:
    # Prepare: worst cases over many random replacements of one row in each window
    rng = np.random.default_rng(3)
    fmap = FeatureMap(8, num_features=32, bandwidth=0.3)
    n, m = 10, 20
    worst = 0.0
    for _ in range(200):
        ref, fresh = _features(rng, m), _features(rng, n)
        s0 = np.linalg.norm(fmap.transform(ref).mean(0) - fmap.transform(fresh).mean(0))
        ref[0], fresh[0] = rng.normal(size=8) * 5, rng.normal(size=8) * 5
        s1 = np.linalg.norm(fmap.transform(ref).mean(0) - fmap.transform(fresh).mean(0))
        worst = max(worst, abs(s1 - s0))
    # Assert: 2/n + 2/m = 0.3
    assert sensitivity(n, m) == pytest.approx(0.3)
    assert worst <= sensitivity(n, m)


def test_public_threshold_is_the_mcdiarmid_bound() -> None:
    # Prepare: alpha = e^-2 so sqrt(2 ln(1/alpha)) = 2; n = m = 100
    # Execute / Assert: sqrt(1/100 + 1/100) * (1 + 2)
    assert public_threshold(100, 100, math.exp(-2)) == pytest.approx(math.sqrt(0.02) * 3)


def test_local_threshold_holds_its_level_without_drift_and_fires_on_a_shift() -> None:
    # Prepare
    rng = np.random.default_rng(4)
    fmap = FeatureMap(8, num_features=64, bandwidth=0.5)
    sketch = build_sketch(fmap, _features(rng, 400), window=100, alpha=0.05, seed=1)
    # Execute
    quiet = [sketch.statistic(_features(rng, 100)) > sketch.local_threshold for _ in range(200)]
    shifted = [
        sketch.statistic(_features(rng, 100, shift=1.5)) > sketch.local_threshold for _ in range(20)
    ]
    # Assert: binomial(200, 0.05) exceeds 20 with probability < 0.1 %
    assert sum(quiet) <= 20
    assert all(shifted)


def test_sketch_keeps_no_reference_rows() -> None:
    # Prepare
    rng = np.random.default_rng(5)
    ref = _features(rng, 30)
    # Execute
    sketch = build_sketch(FeatureMap(8, num_features=16), ref, window=10, draws=10)
    # Assert: a 2D-vector, counts and a threshold; no array with a row per image
    arrays = [v for v in vars(sketch).values() if isinstance(v, np.ndarray)]
    assert [a.shape for a in arrays] == [(32,)]


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 0}, {"alpha": 1.0}, {"draws": 0}],
)
def test_bad_sketch_settings_are_refused(kwargs: dict) -> None:
    settings = {"window": 5, "alpha": 0.05, "draws": 5, **kwargs}
    with pytest.raises(ValueError):
        build_sketch(FeatureMap(8), np.ones((10, 8)), **settings)


def test_fresh_window_of_the_wrong_size_is_refused() -> None:
    sketch = build_sketch(FeatureMap(8), np.random.default_rng(0).normal(size=(10, 8)), window=5)
    with pytest.raises(ValueError, match="5 feature rows"):
        sketch.statistic(np.ones((4, 8)))
