"""Skellam: shares sum to the target distribution; the accountant is sound and tight."""

import math

import numpy as np
import pytest
from scipy import special, stats

from ssl_fed.privacy import skellam as sk


def test_sum_of_k_shares_is_skellam_with_the_target_moments_and_pmf():
    # Prepare: 10 sites, each a share of μ/10, many coordinates
    k, mu, n = 10, 0.8, 200_000

    # Execute
    total = np.sum([sk.noise_share(mu / k, n) for _ in range(k)], axis=0)

    # Assert: Skellam(μ, μ) has mean 0 and variance 2μ; the pmf matches within sampling error
    assert abs(total.mean()) < 5 * math.sqrt(2 * mu / n)
    assert total.var() == pytest.approx(2 * mu, rel=0.02)
    values, counts = np.unique(total, return_counts=True)
    tv = 0.5 * np.sum(np.abs(counts / n - stats.skellam.pmf(values, mu, mu)))
    tv += 0.5 * (1 - stats.skellam.pmf(values, mu, mu).sum())
    assert tv < 0.01


def test_shares_come_from_secret_randomness():
    a, b = sk.noise_share(5.0, 1000), sk.noise_share(5.0, 1000)
    assert not np.array_equal(a, b)
    assert not sk.noise_share(0.0, 10).any()


def test_unsampled_rdp_bounds_the_exact_renyi_divergence_of_shifted_skellam():
    # Prepare: 1-D Skellam shifted by Δ = 1 (Δ1 = Δ2 = 1); exact Rényi divergence by summation
    x = np.arange(-400, 401)
    for mu, slack in ((4.0, 2.0), (40.0, 1.1)):
        p, q = stats.skellam.pmf(x - 1, mu, mu), stats.skellam.pmf(x, mu, mu)
        keep = (p > 1e-250) & (q > 1e-250)
        p, q = p[keep], q[keep]
        for alpha in (2, 4, 8, 16):
            terms = np.log(q) + alpha * (np.log(p) - np.log(q))
            exact = float(special.logsumexp(terms)) / (alpha - 1)

            # Execute / Assert: a bound, and a tight one once μ is moderate
            bound = sk.skellam_rdp(alpha, mu, 1.0, 1.0)
            assert exact <= bound <= slack * exact


def test_unsampled_skellam_rdp_converges_to_the_gaussian_rdp():
    # At variance (σΔ2)² the Gaussian's RDP is α / (2σ²); Skellam's extra term vanishes with μ
    sigma, d = 1.3, 4096
    gaps = []
    for l2 in (10.0, 1e3, 1e5):
        mu = (sigma * l2) ** 2 / 2
        gaps.append(sk.skellam_rdp(8, mu, l2, l2 * min(l2, math.sqrt(d))) / (8 / (2 * sigma**2)))
    assert gaps[0] > gaps[1] > gaps[2] > 1.0
    assert gaps[2] == pytest.approx(1.0, abs=1e-6)


def _zhu_wang_reference(alpha: int, q: float, eps) -> float:
    """Independent transcription of Zhu & Wang (ICML 2019)'s general upper bound, plain floats."""
    total = (1 - q) ** (alpha - 1) * (alpha * q - q + 1)
    total += special.comb(alpha, 2, exact=True) * q**2 * (1 - q) ** (alpha - 2) * math.exp(eps(2))
    for ell in range(3, alpha + 1):
        c = special.comb(alpha, ell, exact=True)
        total += 3 * c * (1 - q) ** (alpha - ell) * q**ell * math.exp((ell - 1) * eps(ell))
    return math.log(total) / (alpha - 1)


def test_subsampled_rdp_matches_an_independent_transcription():
    mu, l2, l1, q = 50.0, 3.0, 9.0, 0.05
    rdp_at = [math.inf, math.inf] + [sk.skellam_rdp(a, mu, l2, l1) for a in range(2, 21)]
    for alpha in (2, 3, 7, 20):
        ref = _zhu_wang_reference(alpha, q, lambda a: sk.skellam_rdp(a, mu, l2, l1))
        assert sk.subsampled_rdp(alpha, q, rdp_at) == pytest.approx(ref, rel=1e-9)


# Published reference: tensorflow/privacy, tutorials/README.md, "Select Parameters" table, first
# row: noise multiplier 1.12, 256 of 60,000 MNIST examples per step, 60 epochs, δ = 1e-5 -> ε = 2.92
# (computed there with the RDP accountant and the classic conversion of Mironov 2017, Prop. 3).
TF_Q, TF_SIGMA, TF_STEPS, TF_EPS = 256 / 60000, 1.12, 60 * 60000 // 256, 2.92


def test_gaussian_path_reproduces_the_published_tf_privacy_table_entry():
    rdp = sk.step_rdp((TF_SIGMA, TF_Q, TF_STEPS))
    assert sk.rdp_to_epsilon(rdp, 1e-5, classic=True) == pytest.approx(TF_EPS, rel=0.02)


def test_skellam_epsilon_is_never_below_the_gaussian_and_converges_to_its_bound_as_bits_grow():
    # Prepare: the same σ and sensitivity, Skellam at growing precision (integer Δ2 = 1/γ · C)
    gauss = sk.epsilon_for_history([(TF_SIGMA, TF_Q, TF_STEPS)], 1e-5)
    eps = []
    for l2 in (4.0, 64.0, 2.0**12, 2.0**20):
        step = sk.SkellamStep(TF_SIGMA, TF_Q, TF_STEPS, l2, l2 * min(l2, 362.0))
        eps.append(sk.epsilon_for_history([step], 1e-5))

    # Assert: monotone, never optimistic, and within the Zhu-Wang bound's known slack (<10%)
    assert eps == sorted(eps, reverse=True)
    assert all(e >= gauss for e in eps)
    assert eps[-1] == pytest.approx(eps[-2], rel=1e-4)
    assert eps[-1] <= 1.10 * gauss


def test_mixed_history_composes_both_mechanisms():
    step = sk.SkellamStep(1.0, 0.05, 20, 1e4, 1e6)
    both = sk.epsilon_for_history([step, (1.0, 0.05, 20)], 1e-5)
    assert sk.epsilon_for_history([step], 1e-5) < both
    assert sk.epsilon_for_history([], 1e-5) == 0.0


def test_calibration_finds_the_smallest_sigma_within_the_target():
    kw = {"delta": 1e-5, "sample_rate": 0.05, "steps": 40, "l2_sensitivity": 1e4}
    sigma = sk.calibrate_skellam(target_epsilon=3.0, l1_sensitivity=1e6, **kw)
    at = sk.epsilon_for_history([sk.SkellamStep(sigma, 0.05, 40, 1e4, 1e6)], 1e-5)
    below = sk.epsilon_for_history([sk.SkellamStep(0.99 * sigma, 0.05, 40, 1e4, 1e6)], 1e-5)
    assert at <= 3.0 < below
