"""ε against independent accountants, and σ calibration against Opacus."""

import dp_accounting
import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from ssl_fed.privacy.accounting import calibrate_noise, epsilon_for_history

HISTORY = [(1.1, 0.1, 30), (1.1, 0.1, 30), (0.8, 0.05, 50)]


def test_epsilon_matches_opacus_accountant_stepped_one_step_at_a_time():
    # Prepare: Opacus' accountant driven step by step, as its optimizer hook would
    acc = RDPAccountant()
    for sigma, q, steps in HISTORY:
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=q)

    # Execute / Assert
    assert epsilon_for_history(HISTORY, 1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)


def test_epsilon_agrees_with_googles_dp_accounting():
    # Prepare: an independent RDP implementation (Google's dp-accounting)
    acc = dp_accounting.rdp.RdpAccountant()
    for sigma, q, steps in HISTORY:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        acc.compose(event, steps)

    # Execute / Assert: both are upper bounds from different order grids; they agree closely
    assert epsilon_for_history(HISTORY, 1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=0.03)


def test_composition_is_not_the_sum_of_per_round_epsilons():
    one = epsilon_for_history([(1.0, 0.01, 100)], 1e-5)
    ten = epsilon_for_history([(1.0, 0.01, 100)] * 10, 1e-5)
    assert one < ten < 10 * one


def test_empty_history_spends_nothing():
    assert epsilon_for_history([], 1e-5) == 0.0


def test_calibrated_sigma_matches_opacus_and_keeps_epsilon_within_target():
    # Prepare
    q, steps, target = 0.1, 200, 3.0

    # Execute
    sigma = calibrate_noise(target_epsilon=target, delta=1e-5, sample_rate=q, steps=steps)

    # Assert
    assert epsilon_for_history([(sigma, q, steps)], 1e-5) <= target
    assert sigma == pytest.approx(
        get_noise_multiplier(target_epsilon=target, target_delta=1e-5, sample_rate=q, steps=steps),
        rel=0.02,
    )


def test_calibration_spends_only_what_the_prior_history_left():
    # Prepare: ε ≈ 1.5 already spent
    prior = [(3.0, 0.1, 100)]

    # Execute
    sigma = calibrate_noise(target_epsilon=4.0, delta=1e-5, sample_rate=0.1, steps=100, prior=prior)

    # Assert
    total = epsilon_for_history([*prior, (sigma, 0.1, 100)], 1e-5)
    assert 3.9 <= total <= 4.0


def test_calibration_refuses_when_the_prior_already_exhausted_the_target():
    with pytest.raises(ValueError, match="already spent"):
        calibrate_noise(
            target_epsilon=0.5, delta=1e-5, sample_rate=0.5, steps=10, prior=[(0.5, 0.5, 100)]
        )
