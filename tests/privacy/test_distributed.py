"""Distributed DP codec: rotation, conditional rounding, scale choice, decoding, wrap detection."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import hadamard

from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.params import DDPParams, choose_scale
from ssl_fed.privacy.distributed.rotation import fwht, padded_dim, rotate, signs, unrotate
from ssl_fed.privacy.distributed.rounding import conditional_round, l1_bound, rounding_bound


def _params(**kw: float) -> DDPParams:
    base = dict(
        dim=300,
        bits=24,
        clip=1.0,
        sensitivity_factor=1,
        noise_multiplier=1.0,
        min_noisy_sites=3,
        max_units=50,
        num_sites=5,
    )
    base.update(kw)
    return choose_scale(**base)  # type: ignore[arg-type]


def test_fwht_equals_the_sylvester_hadamard_matrix():
    x = np.random.default_rng(0).normal(size=(3, 16))
    assert np.allclose(fwht(x), x @ hadamard(16).T)


def test_rotation_round_trips_and_preserves_norms():
    x = np.random.default_rng(1).normal(size=(4, 300))
    y = rotate(x, seed=7)
    assert y.shape == (4, 512)
    assert np.allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1))
    assert np.allclose(unrotate(y, seed=7, dim=300), x)
    assert not np.allclose(unrotate(y, seed=8, dim=300), x)


def test_rotation_flattens_a_spike():
    x = np.zeros(1024)
    x[3] = 10.0
    y = rotate(x, seed=1)
    assert np.allclose(np.abs(y), 10.0 / math.sqrt(1024))
    assert set(np.unique(signs(1, 1000))) == {-1.0, 1.0} and padded_dim(1000) == 1024


@settings(max_examples=60, deadline=None)
@given(
    dim=st.integers(1, 200),
    c=st.floats(0.0, 50.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_conditional_rounding_never_exceeds_its_bound(dim, c, seed):
    # Prepare: rows of norm exactly c (or 0), arbitrary directions
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(4, dim))
    rows *= c / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    bound = rounding_bound(c, dim)

    # Execute
    out = conditional_round(rows, bound, rng)

    # Assert: norm bound, one of floor/ceil per coordinate, L1 bound of integer vectors
    assert np.all(np.linalg.norm(out, axis=1) <= bound + 1e-9)
    assert np.all((out == np.floor(rows)) | (out == np.ceil(rows)))
    assert np.all(np.abs(out).sum(axis=1) <= l1_bound(bound, dim) + 1e-9)


def test_rounding_bound_inflation_vanishes_as_bits_grow():
    infl = [_params(bits=b).inflation for b in (16, 24, 32, 40)]
    assert infl == sorted(infl, reverse=True)
    assert infl[-1] == pytest.approx(1.0, abs=1e-6)


def test_sigma_zero_decodes_the_exact_sum_within_the_rounding_bound():
    # Prepare: 4 sites, clipped unit gradients, no noise
    p = _params(noise_multiplier=0.0)
    rng = np.random.default_rng(2)
    sites = [rng.normal(size=(6, 300)) for _ in range(4)]
    sites = [u / np.maximum(1.0, np.linalg.norm(u, axis=1, keepdims=True)) for u in sites]
    words = sum(codec.to_words(codec.encode_units(u, p, seed=11), p.bits) for u in sites)

    # Execute
    got = codec.decode_sum(words, p, seed=11)

    # Assert
    exact = np.sum([u.sum(axis=0) for u in sites], axis=0)
    assert np.linalg.norm(got - exact) <= codec.rounding_error_bound(p, 24)
    assert np.linalg.norm(got - exact) < 1e-3 * np.linalg.norm(exact)


def test_words_round_trip_signed_values():
    v = np.array([-(2**20), -1, 0, 1, 2**20 - 1], dtype=np.int64)
    assert np.array_equal(codec.from_words(codec.to_words(v, 21), 21), v)


def test_no_wrap_in_1000_randomized_rounds_at_the_chosen_scale():
    # Prepare: worst case for the signal bound: every unit at the clip, all aligned
    p = _params(dim=60, bits=20, max_units=40, num_sites=4)
    direction = np.random.default_rng(3).normal(size=60)
    units = np.tile(direction / np.linalg.norm(direction), (10, 1))
    wraps = 0
    for r in range(1000):
        words = sum(codec.to_words(codec.encode_units(units, p, seed=r), p.bits) for _ in range(4))
        wraps += codec.check_wrap(codec.from_words(words, p.bits), p) is not None
    assert wraps == 0
    assert p.wrap_margin_sd(4) >= 2 * p.k_required


def test_a_forced_wrap_is_detected_and_rejected():
    p = _params(dim=60, bits=20, max_units=40, num_sites=4)
    units = np.eye(60)[:10]
    words = codec.to_words(codec.encode_units(units, p, seed=5), p.bits)
    words[7] = (words[7] + np.uint64(1 << (p.bits - 1))) & np.uint64((1 << p.bits) - 1)
    with pytest.raises(codec.WrapError, match="wrapped"):
        codec.decode_sum(words, p, seed=5)


def test_more_units_than_declared_wrap_and_are_rejected():
    # The public unit bound was 1; 4 sites send enough aligned units to pass 2^(b-1) by 25%
    p = _params(dim=16, bits=16, max_units=1, num_sites=4, noise_multiplier=0.0)
    per_unit = p.scale / 4  # a spike rotates to ±scale/√16 in every coordinate
    units = np.tile(np.eye(16)[0], (int(1.25 * 2 ** (p.bits - 1) / per_unit / 4), 1))
    words = sum(codec.to_words(codec.encode_units(units, p, seed=1), p.bits) for _ in range(4))
    with pytest.raises(codec.WrapError):
        codec.decode_sum(words, p, seed=1)


def test_each_site_adds_its_share_and_m_sites_carry_the_full_noise():
    p = _params(dim=2000, noise_multiplier=0.5, min_noisy_sites=3)
    zero = np.zeros((0, 2000))
    sums = sum(codec.encode_units(zero, p, seed=0) for _ in range(3))
    assert np.var(sums) == pytest.approx(2 * p.mu_total, rel=0.1)
    assert p.noise_std(3) == pytest.approx(0.5 * p.l2_sensitivity / p.scale)


def test_too_few_bits_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="use more bits"):
        _params(bits=8, max_units=10_000)


def test_a_unit_above_the_clip_is_refused():
    p = _params()
    with pytest.raises(ValueError, match="exceeds the clip"):
        codec.encode_units(np.full((1, 300), 1.0), p, seed=0)


def test_many_bits_cap_the_scale_where_shares_stay_samplable():
    p = _params(dim=300, bits=52, noise_multiplier=2.0)
    assert p.mu_share <= 1e18
    assert codec.encode_units(np.zeros((0, 300)), p, seed=0).shape == (512,)
    assert p.wrap_margin_sd(5) > 2 * p.k_required


def test_epsilon_from_the_codec_converges_to_the_unquantized_bound_as_bits_grow():
    # Prepare: the same float noise std (σ0·C) and q, rounds; only the bits (γ, inflation) vary
    from ssl_fed.privacy import skellam as sk

    def eps_at(bits: int) -> float:
        p = _params(dim=4000, bits=bits, noise_multiplier=1.0, max_units=20)
        sigma = 1.0 / p.inflation  # σ relative to the inflated Δ2 that gives std = 1.0·C
        step = sk.SkellamStep(sigma, 0.05, 20, p.l2_sensitivity, p.l1_sensitivity)
        return sk.epsilon_for_history([step], 1e-5)

    # Execute
    eps = [eps_at(b) for b in (12, 14, 16, 20, 32)]
    limit = sk.epsilon_for_history([sk.SkellamStep(1.0, 0.05, 20, 1e9, 1e9 * 64)], 1e-5)

    # Assert: fewer bits cost ε; at 32 bits the quantized mechanism is the unquantized one
    assert eps == sorted(eps, reverse=True) and eps[0] > 1.1 * eps[-1]
    assert eps[-1] == pytest.approx(limit, rel=1e-4)
