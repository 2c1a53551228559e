"""Validation of the ``task`` and ``encoder`` groups against their registries."""

from __future__ import annotations

from ssl_fed.config.errors import ConfigError, require, require_finite_positive, require_registered
from ssl_fed.config.schema import EncoderConfig, PrivacyConfig, TaskConfig


def validate_task(t: TaskConfig, privacy: PrivacyConfig) -> None:
    """Check ``task.*``; ``task.name`` must be a registered task.

    The task registry is imported here, not at module level, because the tasks import this
    package's schema. Whether a task couples images is the task's own declaration
    (``couples_examples``), so the in-batch-negatives check needs no list of task names.
    """
    from ssl_fed.tasks import TASKS

    require_registered(t.name, "task.name", TASKS)
    require(t.temperature > 1e-3, "task.temperature", t.temperature, "use a value > 0.001")
    require_finite_positive(t.temperature, "task.temperature", "use a value > 0.001")
    require(t.negatives in {"group", "batch"}, "task.negatives", t.negatives, "group|batch")
    require(t.group_size >= 1, "task.group_size", t.group_size, "use >= 1")
    require(
        1 <= t.multiplicity <= 16,
        "task.multiplicity",
        t.multiplicity,
        "use 1 (off) to 16 augmented view sets per image",
    )
    require(
        t.lambda_rot >= 0 and t.lambda_con >= 0,
        "task.lambda_*",
        (t.lambda_rot, t.lambda_con),
        "weights must be >= 0",
    )
    if privacy.enabled and TASKS[t.name].couples_examples and t.negatives == "batch":
        raise ConfigError(
            f"task.negatives=batch with task.name={t.name} under DP has no stated sensitivity: "
            "NT-Xent with in-batch negatives makes every image's gradient depend on every other "
            "image, so removing one image can change the clipped sum by up to ~2nC while the "
            "accountant would assume C. Use task.negatives=group (group-wise clipping, "
            "sensitivity 2C) or privacy=off."
        )


def validate_encoder(e: EncoderConfig) -> None:
    """Check ``encoder.*``; ``encoder.name`` must be a registered encoder."""
    from ssl_fed.models.encoders import ENCODERS

    require_registered(e.name, "encoder.name", ENCODERS)
    require(
        e.width >= 4 and e.width % e.norm_groups == 0,
        "encoder.width",
        e.width,
        "use a multiple of encoder.norm_groups, >= 4",
    )
