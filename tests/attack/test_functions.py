"""Each attack function against an expected output computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_fed.attack import lie, minmax, replacement, simple


def test_scale_and_sign_flip_multiply_the_honest_delta():
    # Prepare
    own = np.array([0.5, -1.0, 2.0])

    # Execute / Assert
    assert simple.scale(own, 3.0).tolist() == [1.5, -3.0, 6.0]
    assert simple.sign_flip(own, 2.0).tolist() == [-1.0, 2.0, -4.0]


def test_gaussian_is_the_seeded_normal_draw_and_ignores_the_honest_values():
    # Prepare: the same generator, drawn by hand
    expected = np.random.default_rng(7).normal(0.0, 0.3, size=4)

    # Execute
    got = simple.gaussian(np.ones(4), 0.3, seed=7)

    # Assert
    assert np.array_equal(got, expected)
    assert np.array_equal(simple.gaussian(np.zeros(4), 0.3, seed=7), got)


def test_lie_z_matches_the_paper_formula_by_hand():
    # Prepare: n = 10, m = 2: s = floor(6) - 2 = 4, z = Phi^-1(6/10) = 0.2533 (normal table)
    # Execute
    z = lie.lie_z(10, 2)

    # Assert
    assert z == pytest.approx(0.253347, abs=1e-6)
    assert lie.lie_z(50, 12) == pytest.approx(0.5828, abs=1e-4)  # s = 14, Phi^-1(0.72)


def test_lie_submits_mean_minus_z_std():
    # Prepare: coordinate 0: values 1, 3 -> mean 2, std 1; coordinate 1: 0, 0 -> 0, 0
    known = [np.array([1.0, 0.0]), np.array([3.0, 0.0])]

    # Execute
    got = lie.lie(known, 1.5)

    # Assert: 2 - 1.5 * 1 = 0.5 and 0
    assert got.tolist() == [0.5, 0.0]


def test_min_max_solves_the_constraint_by_hand():
    # Prepare: g = (1, 0), (-1, 0): mu = 0, so pass p = (0, 1); R = max pair distance = 2.
    # ||mu + gamma p - g_i||^2 = 1 + gamma^2 = 4  ->  gamma = sqrt(3)
    known = [np.array([1.0, 0.0]), np.array([-1.0, 0.0])]

    # Execute
    got = minmax.min_max(known, direction=np.array([0.0, 1.0]))

    # Assert
    assert got == pytest.approx([0.0, math.sqrt(3.0)])


def test_min_sum_solves_the_constraint_by_hand():
    # Prepare: same g, p: sum_i ||gamma p - g_i||^2 = 2 + 2 gamma^2 <= max_i sum_j d_ij^2 = 4
    known = [np.array([1.0, 0.0]), np.array([-1.0, 0.0])]

    # Execute
    got = minmax.min_sum(known, direction=np.array([0.0, 1.0]))

    # Assert: gamma = 1
    assert got == pytest.approx([0.0, 1.0])


def test_min_max_default_direction_is_the_inverse_unit_mean():
    # Prepare: g = (2, 0), (4, 0): mu = (3, 0), p = (-1, 0), R = 2.
    # |3 - gamma - 2| <= 2 and |3 - gamma - 4| <= 2 -> gamma <= 1 (from the second: 1 + gamma <= 2)
    known = [np.array([2.0, 0.0]), np.array([4.0, 0.0])]

    # Execute
    got = minmax.min_max(known)

    # Assert: mu + 1 * (-1, 0) = (2, 0)
    assert got == pytest.approx([2.0, 0.0])


def test_one_known_update_gives_the_honest_update_back():
    # Prepare
    own = np.array([0.1, -0.2])

    # Execute / Assert: sigma = 0 and both radii 0
    assert lie.lie([own], 2.0).tolist() == own.tolist()
    assert minmax.min_max([own]) == pytest.approx(own)
    assert minmax.min_sum([own]) == pytest.approx(own)


def test_model_replacement_boosts_by_gamma():
    # Prepare: with the other updates cancelling, G + (1/n)(gamma (X - G)) = X when gamma = n
    own, n = np.array([0.25, -0.5]), 4

    # Execute
    got = replacement.model_replacement(own, float(n))

    # Assert
    assert (got / n).tolist() == own.tolist()


def test_lie_z_stays_finite_when_the_colluders_are_a_majority():
    # Prepare: n = 4, m = 3: s = 3 - 3 = 0 would give Phi^-1(1) = inf; s = 1 gives Phi^-1(3/4)
    # Execute / Assert
    assert lie.lie_z(4, 3) == pytest.approx(0.674490, abs=1e-6)


def test_mean_override_lands_the_mean_on_the_target():
    # Prepare: n = 4 sites, m = 2 colluders who know mu = (0.1, -0.2); target 0.4 against mu.
    # Attacker update: (4 * (-0.4, 0.4) - 2 * (0.1, -0.2)) / 2 = (-0.9, 1.0)
    known = [np.array([0.0, -0.1]), np.array([0.2, -0.3])]

    # Execute
    got = replacement.mean_override(known, 4, 2, 0.4)

    # Assert: and two honest sites at mu plus two attackers average to the target
    assert got == pytest.approx([-0.9, 1.0])
    assert (2 * np.array([0.1, -0.2]) + 2 * got) / 4 == pytest.approx([-0.4, 0.4])
