"""One config schema and one loader for every entry point.

- :mod:`~ssl_fed.config.schema`: the dataclasses, the only place defaults live.
- :mod:`~ssl_fed.config.loader`: Hydra composition of ``configs/`` on top of the schema.
- One validation module per group (``data``, ``model``, ``training``, ``federation``); names
  (tasks, data formats, encoders) are checked against their registries, never against a list.

Every value error is a :class:`ConfigError` that names the field, the bad value and the fix.
"""

from __future__ import annotations

from ssl_fed.config.errors import (
    ConfigError,
    require,
    require_finite_positive,
    require_registered,
)
from ssl_fed.config.federation import validate_federation
from ssl_fed.config.loader import (
    compose_config,
    config_dir,
    load_config,
    to_root_config,
    validate_config,
)
from ssl_fed.config.schema import (
    AggregationConfig,
    AugmentConfig,
    DataConfig,
    EncoderConfig,
    EvalConfig,
    PartitionConfig,
    PretrainConfig,
    PrivacyConfig,
    RootConfig,
    SimConfig,
    TaskConfig,
    TrainConfig,
    epsilon_budget,
)
from ssl_fed.config.training import validate_output

__all__ = [
    "AggregationConfig",
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "EncoderConfig",
    "EvalConfig",
    "PartitionConfig",
    "PretrainConfig",
    "PrivacyConfig",
    "RootConfig",
    "SimConfig",
    "TaskConfig",
    "TrainConfig",
    "compose_config",
    "config_dir",
    "epsilon_budget",
    "load_config",
    "require",
    "require_finite_positive",
    "require_registered",
    "to_root_config",
    "validate_config",
    "validate_federation",
    "validate_output",
]
