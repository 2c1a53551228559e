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


def hydra_value(value: Any) -> str:
    """Write ``value`` in Hydra's override grammar (the inverse of its parser, for our types).

    Dict keys stay bare (``{site: 2}``): Hydra rejects quoted keys, so JSON (``{"site": 2}``)
    cannot carry a list of dicts such as ``sim.attack``. Strings are JSON-quoted (Hydra accepts
    double-quoted strings with the same escapes), so ``"1"`` stays a string.

    Raises
    ------
    ValueError
        For a dict key that is not a plain identifier (no config field uses one).
    """
    if isinstance(value, dict):
        for key in value:
            if not (isinstance(key, str) and key.isidentifier()):
                raise ValueError(f"run config: dict key {key!r} is not a plain identifier")
        return "{" + ", ".join(f"{k}: {hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hydra_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _flatten(prefix: str, value: Any, out: dict[str, RunConfigValue]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, sub, out)
    elif value is None:
        out[prefix] = "null"
    elif isinstance(value, list):
        out[prefix] = hydra_value(value)
    else:
        out[prefix] = value


def to_run_config(cfg: RootConfig) -> dict[str, RunConfigValue]:
    """Flatten ``cfg`` to dotted keys; ``None`` becomes ``"null"``, lists Hydra-grammar strings.

    Lists are written by :func:`hydra_value`, so a list of dicts (``sim.attack``, ``sim.drift``)
    survives ``flwr run``'s flat run config and the Hydra overrides built from it.
    """
    out: dict[str, RunConfigValue] = {}
    _flatten("", asdict(cfg), out)
    return out


def _list_override(text: str) -> str:
    """Return a list value in Hydra grammar (JSON with quoted keys is re-encoded)."""
    try:
        return hydra_value(json.loads(text))
    except (json.JSONDecodeError, ValueError):
        return text


def _override(key: str, value: RunConfigValue) -> str:
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, str) and value.startswith("["):
        return f"{key}={_list_override(value)}"
    if isinstance(value, str) and value != "null":
        return f"{key}={json.dumps(value)}"
    return f"{key}={value}"


def run_config_overrides(run_config: Mapping[str, RunConfigValue]) -> list[str]:
    """Hydra overrides (``key=value``) equivalent to a flat run config."""
    return [_override(k, v) for k, v in sorted(run_config.items())]


def from_run_config(run_config: Mapping[str, RunConfigValue]) -> RootConfig:
    """Compose the defaults with ``run_config`` on top and validate (``flwr run`` apps)."""
    return load_config(run_config_overrides(run_config))
