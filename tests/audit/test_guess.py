"""Guessing from scores: counts by hand, Bonferroni over the declared rules."""

import torch

from ssl_fed.audit.bound import epsilon_lower_bound
from ssl_fed.audit.guess import GUESS_RULES, count_correct, score_audit


def test_count_correct_by_hand():
    # Prepare: scores rank canaries 3, 0, 2, 1; coins: 0 and 2 in
    scores = torch.tensor([0.9, 0.1, 0.5, 1.0])
    coins = torch.tensor([True, False, True, False])

    # Execute / Assert: top 2 = {3 (out), 0 (in)} -> 1; bottom 1 = {1 (out)} -> +1
    assert count_correct(scores, coins, 2, 0) == 1
    assert count_correct(scores, coins, 2, 1) == 2


def test_perfect_scores_reach_the_bonferroni_bound_of_the_largest_rule():
    # Prepare: every included canary scores above every excluded one
    coins = torch.arange(1000) % 2 == 0
    scores = coins.double() + torch.linspace(0, 0.1, 1000)

    # Execute
    outcome = score_audit(scores, coins, delta=1e-5, beta=0.05)

    # Assert: the best rule guesses 200 in + 200 out, all right, each rule at level β / 7
    level = 0.05 / len(GUESS_RULES)
    assert outcome.correct == outcome.guesses == 400
    assert outcome.epsilon_lower == epsilon_lower_bound(1000, 400, 400, delta=1e-5, beta=level)
    assert outcome.epsilon_lower < outcome.ceiling


def test_scores_unrelated_to_the_coins_prove_nothing():
    coins = torch.arange(1000) % 2 == 0
    scores = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    assert score_audit(scores, coins, delta=1e-5, beta=0.05).epsilon_lower == 0.0
