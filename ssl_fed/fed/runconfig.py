"""The one meeting point of Hydra's composed config and Flower's flat ``run_config``.

``flwr run`` hands the apps a flat mapping of dotted keys to scalars (from
``[tool.flwr.app.config]`` plus ``--run-config``); ``run_simulation`` hands them nothing, so the
simulation passes the composed config through factory closures instead. Both paths end in
:func:`from_run_config` / :func:`to_run_config`, so there is one translation and no second set of
defaults: every key missing from a run config takes its value from ``configs/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from ssl_fed.config import RootConfig, load_config

RunConfigValue = bool | int | float | str


def _flatten(prefix: str, value: Any, out: dict[str, RunConfigValue]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, sub, out)
    elif value is None:
        out[prefix] = "null"
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def to_run_config(cfg: RootConfig) -> dict[str, RunConfigValue]:
    """Flatten ``cfg`` to dotted keys; ``None`` becomes ``"null"``, lists become JSON strings."""
    out: dict[str, RunConfigValue] = {}
    _flatten("", asdict(cfg), out)
    return out


def _override(key: str, value: RunConfigValue) -> str:
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, str) and value != "null" and not value.startswith("["):
        return f"{key}={json.dumps(value)}"
    return f"{key}={value}"


def run_config_overrides(run_config: Mapping[str, RunConfigValue]) -> list[str]:
    """Hydra overrides (``key=value``) equivalent to a flat run config."""
    return [_override(k, v) for k, v in sorted(run_config.items())]


def from_run_config(run_config: Mapping[str, RunConfigValue]) -> RootConfig:
    """Compose the defaults with ``run_config`` on top and validate (``flwr run`` apps)."""
    return load_config(run_config_overrides(run_config))
