"""The f-DP one-run estimate (Mahloujifar, Melis & Chaudhuri, arXiv 2410.22235)."""

import itertools
import math

import pytest
import torch

from ssl_fed.audit.bound import epsilon_lower_bound
from ssl_fed.audit.fdp import (
    gaussian_family,
    mu_ceiling,
    mu_lower_bound,
    parameter_lower_bound,
    pure_dp_family,
    rejects,
)
from ssl_fed.audit.guess import count_correct


@pytest.mark.parametrize(
    ("m", "correct", "guesses", "noise"),
    [
        (1000, 500, 800, 4.981),
        (2000, 1000, 1500, 3.571),
        (1000, 190, 200, 1.111),
        (1000, 1000, 1000, 0.431),
    ],
)
def test_matches_the_authors_reference_code_on_its_grid(m, correct, guesses, noise):
    # Prepare: Meta PrivacyGuard's FDPAnalysisNode (the authors' code) scans noise = 1/μ upward in
    # steps of 0.01 from 0.001 and stops at the first rejected noise; a line-by-line transcription
    # of its scan (scipy.stats.norm, lists), run at β = 0.05 outside this repository, stopped at
    # ``noise`` (m=1000, c=500, c_cap=800 is its own test's case)
    # Execute
    mu = mu_lower_bound(m, guesses, correct, beta=0.05)

    # Assert: our exact boundary lies in the grid cell it stopped in
    assert noise - 0.01 < 1 / mu <= noise


def test_pure_dp_curve_all_correct_is_steinkes_closed_form():
    # Prepare: 100 of 100 right; Steinke et al. Theorem 3.1: ε = log(q/(1-q)), q = β^(1/100)
    q = 0.05 ** (1 / 100)

    # Execute
    eps = parameter_lower_bound(100, 100, 100, pure_dp_family, beta=0.05)

    # Assert: 3.49297 by hand (same as tests/audit/test_bound.py)
    assert eps == pytest.approx(math.log(q / (1 - q)), abs=1e-5)


@pytest.mark.parametrize(("m", "r", "v"), [(1000, 1000, 700), (1000, 100, 95), (1000, 200, 180)])
def test_pure_dp_curve_stays_within_two_percent_of_theorem_3_1(m, r, v):
    # Execute
    fdp = parameter_lower_bound(m, r, v, pure_dp_family, beta=0.05)
    steinke = epsilon_lower_bound(m, r, v, delta=0.0, beta=0.05)

    # Assert: the same test of the same hypothesis, by a different derivation
    assert fdp == pytest.approx(steinke, rel=0.02)


def test_more_correct_guesses_reject_more():
    # Execute
    mus = [mu_lower_bound(1000, 200, v, beta=0.05) for v in (100, 120, 150, 180, 200)]

    # Assert: 100 of 200 is chance (nothing rejected), then strictly increasing
    assert mus[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(mus))


def test_all_wrong_rejects_nothing():
    assert mu_lower_bound(1000, 400, 0, beta=0.05) == 0.0
    assert not rejects(1000, 400, 0, gaussian_family(10.0), beta=0.05)


def test_ceiling_grows_with_the_number_of_canaries():
    # Execute / Assert: all-correct at m bounds every other (m, r, v) with r <= m
    ceilings = [mu_ceiling(m, beta=0.05) for m in (100, 1000, 10_000)]
    assert ceilings[0] < ceilings[1] < ceilings[2]
    assert mu_lower_bound(1000, 400, 400, beta=0.05) < ceilings[1]


def test_ideal_gaussian_estimate_stays_below_its_mu_at_the_confidence():
    # Prepare: 40 seeded runs of the ideal μ-GDP test (score = μ·coin + N(0, 1)), m = 1000,
    # guessing the top 100 in and the bottom 100 out
    mu, runs, beta, over = 1.666, 40, 0.05, 0
    best = 0.0
    for seed in range(runs):
        gen = torch.Generator().manual_seed(seed)
        coins = torch.rand(1000, generator=gen) < 0.5
        scores = mu * coins.double() + torch.randn(1000, generator=gen, dtype=torch.float64)
        estimate = mu_lower_bound(1000, 200, count_correct(scores, coins, 100, 100), beta=beta)
        over += estimate > mu
        best = max(best, estimate)

    # Assert: validity allows about β·40 = 2 runs above μ (P[Binomial(40, 0.05) >= 5] ≈ 0.05),
    # and the estimate is informative (well above 0)
    assert over <= 4
    assert 0.5 < best <= mu


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="correct"):
        mu_lower_bound(10, 5, 6, beta=0.05)
    with pytest.raises(ValueError, match="beta"):
        mu_lower_bound(10, 5, 3, beta=1.0)
