"""The audit's report: TensorBoard scalars and the markdown verdict."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssl_fed.audit.report import audit_markdown, log_tensorboard


def metrics(lower, eps, ceiling, measured=0.9):
    return {
        "kind": "white-box",
        "task": "rotation",
        "epsilon": eps,
        "epsilon_lower": lower,
        "epsilon_ceiling": ceiling,
        "violation": lower > eps or measured > 1.0,
        "can_detect_violation": ceiling > eps,
        "delta": 1e-5,
        "confidence": 0.95,
        "noise_multiplier": 1.0,
        "sample_rate": 0.1,
        "steps": 10,
        "sensitivity": 1.0,
        "measured_sensitivity": measured,
        "sensitivity_violation": measured > 1.0,
        "audit": {"correct": 9, "guesses": 10, "canaries": 100, "included": 52},
    }


def test_tensorboard_holds_epsilon_beside_epsilon_lower(tmp_path):
    # Execute
    log_tensorboard(metrics(0.5, 1.0, 3.49), tmp_path)

    # Assert
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    read = {t: events.Scalars(t)[0].value for t in events.Tags()["scalars"]}
    assert read == pytest.approx(
        {
            "audit/white-box/epsilon": 1.0,
            "audit/white-box/epsilon_lower": 0.5,
            "audit/white-box/epsilon_ceiling": 3.49,
        }
    )


def test_markdown_states_the_verdict_and_when_the_audit_is_blind():
    assert "VIOLATION" in audit_markdown(metrics(2.0, 1.0, 3.49))
    assert "consistent" in audit_markdown(metrics(0.5, 1.0, 3.49))
    assert "cannot flag a bug" in audit_markdown(metrics(0.5, 8.0, 3.49))
    assert "cannot flag a bug" not in audit_markdown(metrics(0.5, 1.0, 3.49))


def test_markdown_names_a_measured_sensitivity_above_the_declared_one():
    # Execute
    text = audit_markdown(metrics(0.1, 1.0, 3.49, measured=1.07))

    # Assert
    assert "VIOLATION" in text
    assert "up to 1.070C (declared 1C; EXCEEDED)" in text
