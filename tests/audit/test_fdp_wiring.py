"""The f-DP estimate travels with the audit: outcome, markdown, TensorBoard; never the verdict."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssl_fed.audit.fdp import epsilon_fdp, mu_ceiling, mu_lower_bound
from ssl_fed.audit.guess import FDP_RULES, score_audit
from ssl_fed.audit.report import audit_markdown, log_tensorboard
from tests.audit.test_report import metrics


def test_perfect_scores_give_the_largest_fdp_rule_at_its_own_bonferroni_level():
    # Prepare: every included canary scores above every excluded one
    coins = torch.arange(1000) % 2 == 0
    scores = coins.double() + torch.linspace(0, 0.1, 1000)

    # Execute
    outcome = score_audit(scores, coins, delta=1e-5, beta=0.05)

    # Assert: 200 in + 200 out all right, tested at β / 3; ceiling = all 1000 right at β
    mu = mu_lower_bound(1000, 400, 400, beta=0.05 / len(FDP_RULES))
    assert outcome.mu_fdp_gaussian == mu > 0
    assert outcome.epsilon_fdp_gaussian == epsilon_fdp(mu, 1e-5)
    assert outcome.mu_fdp_ceiling == mu_ceiling(1000, beta=0.05) > mu
    assert outcome.epsilon_fdp_ceiling > outcome.epsilon_fdp_gaussian


def test_random_scores_estimate_nothing():
    coins = torch.arange(1000) % 2 == 0
    scores = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    assert score_audit(scores, coins, delta=1e-5, beta=0.05).epsilon_fdp_gaussian == 0.0


def with_fdp(lower, eps, fdp):
    return metrics(lower, eps, 5.78) | {
        "mu_fdp_gaussian": 1.5,
        "epsilon_fdp_gaussian": fdp,
        "epsilon_fdp_ceiling": 12.3,
    }


def test_markdown_reports_the_estimate_but_the_verdict_follows_epsilon_lower_only():
    # Execute: ε_fdp above the accountant's ε, ε_lower below it
    text = audit_markdown(with_fdp(0.5, 3.0, 6.0))

    # Assert
    assert "ε_fdp = 6.000" in text and "not μ-GDP for μ < 1.500" in text
    assert "consistent" in text and "VIOLATION" not in text


def test_tensorboard_holds_the_estimate_and_its_ceiling(tmp_path):
    # Execute
    log_tensorboard(with_fdp(0.5, 3.0, 6.0), tmp_path)

    # Assert
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    read = {t: events.Scalars(t)[0].value for t in events.Tags()["scalars"]}
    assert read["audit/white-box/epsilon_fdp_gaussian"] == pytest.approx(6.0)
    assert read["audit/white-box/epsilon_fdp_ceiling"] == pytest.approx(12.3)
