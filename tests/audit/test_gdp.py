"""μ-GDP ↔ (ε, δ): round trips, and Opacus' own GDP and PRV accountants as the references."""

import math
import warnings

import pytest
from opacus.accountants import PRVAccountant
from opacus.accountants.analysis.gdp import eps_from_mu
from scipy.stats import norm

from ssl_fed.audit.gdp import gaussian_delta, gaussian_epsilon, gaussian_mu, gaussian_tradeoff


def test_delta_by_hand_at_mu_one_epsilon_zero():
    # Execute / Assert: δ(0) = Φ(μ/2) - Φ(-μ/2) = 2Φ(1/2) - 1 = 0.382925 (tables)
    assert gaussian_delta(0.0, 1.0) == pytest.approx(0.3829249, abs=1e-7)


def test_tradeoff_curve_ends_and_a_point_by_hand():
    # Execute / Assert: G_μ(0) = 1, G_μ(1) = 0, G_1(0.5) = Φ(-1)
    assert gaussian_tradeoff(1.0, 0.0) == 1.0 and gaussian_tradeoff(1.0, 1.0) == 0.0
    assert gaussian_tradeoff(1.0, 0.5) == pytest.approx(norm.cdf(-1.0))


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 8.0])
def test_calibration_round_trips_through_delta(epsilon):
    # Execute
    mu = gaussian_mu(epsilon, 1e-5)

    # Assert: δ(ε; μ) = 1e-5 at the calibrated μ, and ε(μ, δ) gives ε back
    assert gaussian_delta(epsilon, mu) == pytest.approx(1e-5, rel=1e-6)
    assert gaussian_delta(epsilon, mu) <= 1e-5
    assert gaussian_epsilon(mu, 1e-5) == pytest.approx(epsilon, abs=1e-7)


def test_epsilon_eight_gives_the_leads_sigma():
    # Execute / Assert: μ ≈ 1.666, σ = 1/μ ≈ 0.600 (brief of issue 16)
    mu = gaussian_mu(8.0, 1e-5)
    assert mu == pytest.approx(1.6660, abs=1e-3) and 1 / mu == pytest.approx(0.6002, abs=1e-3)


@pytest.mark.parametrize("mu", [0.3, 1.0, 1.666, 3.0])
def test_epsilon_matches_opacus_gdp_dual(mu):
    # Execute / Assert: Opacus' eps_from_mu (brentq on the same dual) agrees
    assert gaussian_epsilon(mu, 1e-5) == pytest.approx(eps_from_mu(mu=mu, delta=1e-5), abs=1e-6)


@pytest.mark.parametrize("epsilon", [3.0, 8.0])
def test_one_full_batch_gaussian_step_matches_opacus_prv(epsilon):
    # Prepare: the analytic-Gaussian σ, one step at q = 1, under Opacus' numerical PRV accountant
    sigma = 1.0 / gaussian_mu(epsilon, 1e-5)
    accountant = PRVAccountant()
    accountant.history = [(sigma, 1.0, 1)]

    # Execute
    with warnings.catch_warnings():  # PRV takes log(1 - q), -inf at q = 1, and warns
        warnings.simplefilter("ignore", RuntimeWarning)
        prv = accountant.get_epsilon(delta=1e-5)

    # Assert: PRV is an upper bound within its discretisation error (~0.01 here)
    assert epsilon <= prv <= epsilon + 0.05


def test_invalid_inputs_name_the_argument():
    with pytest.raises(ValueError, match="delta"):
        gaussian_epsilon(1.0, 0.0)
    with pytest.raises(ValueError, match="mu"):
        gaussian_delta(1.0, -1.0)
    assert math.isclose(gaussian_epsilon(0.0, 1e-5), 0.0)
