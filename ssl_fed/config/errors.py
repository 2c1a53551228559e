"""The config error and the two checks every group's validation is written with."""

from __future__ import annotations

import math
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the fix."""


def require(ok: bool, name: str, value: object, fix: str) -> None:
    """Raise :class:`ConfigError` naming ``name``, its ``value`` and the ``fix`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: {fix}")


def require_finite_positive(value: float | None, name: str, fix: str) -> None:
    """Refuse anything but a finite number > 0 (``inf`` and ``nan`` included); ``None`` passes."""
    if value is not None:
        require(math.isfinite(value) and value > 0, name, value, f"{fix} (finite)")


def require_registered(value: str, name: str, registered: Iterable[str]) -> None:
    """Refuse a name that is not in a registry; the message lists the registered names."""
    valid = sorted(registered)
    require(value in valid, name, value, f"use one of {', '.join(valid)}")
