"""The one-run bound (Steinke, Nasr & Jagielski, arXiv 2305.08846) against hand-computed cases."""

import math
from fractions import Fraction

import pytest
from scipy import stats

from ssl_fed.audit.bound import epsilon_ceiling, epsilon_lower_bound, p_value


def theorem_5_2_p_value(m, r, v, eps, delta):
    """Independent reference: the theorem's max over every i in 1..m, f from binomial sums."""
    q = 1.0 / (1.0 + math.exp(-eps))
    pmf = [stats.binom.pmf(k, r, q) for k in range(r + 1)]

    def f(t):  # P[Binomial(r, q) >= t]
        return sum(pmf[max(t, 0) :]) if t <= r else 0.0

    worst = max((f(v - i) - f(v)) / i for i in range(1, m + 1))
    return min(1.0, f(v) + 2 * m * delta * worst)


def test_pure_dp_all_correct_matches_the_closed_form():
    # Prepare: δ = 0 and r = v, so p = q^r and ε = log(q / (1 - q)) with q = β^(1/r)
    q = 0.05 ** (1 / 100)
    expected = math.log(q / (1 - q))

    # Execute
    eps = epsilon_lower_bound(100, 100, 100, delta=0.0, beta=0.05)

    # Assert: 3.4930 by hand, and the solver errs low by less than 1e-5
    assert expected == pytest.approx(3.49297, abs=1e-5)
    assert expected - 1e-5 <= eps <= expected


def test_pure_dp_tail_is_a_binomial_tail_hand_computed():
    # Prepare: r = 3 guesses, v = 2 correct, ε = log 3 so each guess is right w.p. 3/4
    q = Fraction(3, 4)
    by_hand = 3 * q**2 * (1 - q) + q**3  # P[B >= 2] = 27/64 + 27/64

    # Execute
    p = p_value(10, 3, 2, math.log(3), 0.0)

    # Assert
    assert p == pytest.approx(float(by_hand)) and float(by_hand) == pytest.approx(54 / 64)


@pytest.mark.parametrize(("m", "r", "v", "eps"), [(50, 20, 17, 1.0), (200, 40, 40, 2.5)])
def test_delta_term_matches_the_theorem_with_every_i(m, r, v, eps):
    # Execute / Assert: restricting the max to i <= v loses nothing
    assert p_value(m, r, v, eps, 1e-3) == pytest.approx(theorem_5_2_p_value(m, r, v, eps, 1e-3))


def test_the_bound_is_the_largest_rejected_epsilon():
    # Execute
    eps = epsilon_lower_bound(1000, 100, 95, delta=1e-5, beta=0.05)

    # Assert: rejected just below, not rejected just above
    assert eps > 0
    assert p_value(1000, 100, 95, eps, 1e-5) < 0.05 <= p_value(1000, 100, 95, eps + 1e-4, 1e-5)


def test_chance_level_guessing_proves_nothing():
    assert epsilon_lower_bound(1000, 100, 50, delta=1e-5, beta=0.05) == 0.0


def test_ceiling_grows_with_canaries_and_bounds_every_outcome():
    # Execute
    small, large = (epsilon_ceiling(m, delta=1e-5, beta=0.05) for m in (100, 1000))

    # Assert: more canaries allow more; no outcome on 1000 canaries beats its ceiling
    assert small < large
    for r in (10, 100, 500):
        assert epsilon_lower_bound(1000, r, r, delta=1e-5, beta=0.05) <= large


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="correct"):
        p_value(10, 5, 6, 1.0, 0.0)


@pytest.mark.parametrize(
    ("r", "v", "beta", "published"),
    [
        (100, 100, 0.05, 3.4791953936219215),
        (100, 100, 0.01, 3.023197554051876),
        (35, 23, 0.05, 0.014548719860613346),
        (100, 60, 0.05, 0.05073561053723097),
    ],
)
def test_matches_an_independent_implementations_published_bounds(r, v, beta, published):
    # Prepare: m = 500 canaries, δ = 1e-5, as published by an independent implementation of the
    # paper's Algorithm (codedp-ase26/codedp-cpt-models on Hugging Face,
    # starcoder2-7b/dp8/audit_results.json and dp3/audit_results.json, "empirical_epsilon").
    # Not a number from the paper's text: its indexed text states none we could find.
    # Execute
    eps = epsilon_lower_bound(500, r, v, delta=1e-5, beta=beta)

    # Assert: our bisection errs low by at most 1e-6
    assert published - 1e-6 <= eps <= published + 1e-9
