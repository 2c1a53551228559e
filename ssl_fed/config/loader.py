"""The one loader: compose ``configs/`` on top of the schema, type-check, validate.

The schema (:class:`~ssl_fed.config.schema.RootConfig`) is registered with Hydra's ConfigStore as
``ssl_fed_schema`` and ``configs/config.yaml`` lists it first in its defaults, so every key
exists (and can be overridden on the command line) before any YAML file is read, and the YAML
files only state what differs from the schema's defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssl_fed.config.data import validate_data, validate_partition
from ssl_fed.config.errors import ConfigError
from ssl_fed.config.federation import validate_federation
from ssl_fed.config.model import validate_encoder, validate_task
from ssl_fed.config.schema import RootConfig
from ssl_fed.config.training import (
    validate_eval,
    validate_pretrain,
    validate_privacy,
    validate_run_keys,
    validate_train,
)

SCHEMA_NAME = "ssl_fed_schema"
"""The schema's name in Hydra's ConfigStore (first entry of ``configs/config.yaml``'s defaults)."""

ConfigStore.instance().store(name=SCHEMA_NAME, node=RootConfig)


def config_dir() -> Path:
    """Return the ``configs/`` directory (``SSL_FED_CONFIG_DIR`` overrides it)."""
    env = os.environ.get("SSL_FED_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no config.yaml in {path}; install ssl-fed from its source tree (pip install -e .) "
            "or point SSL_FED_CONFIG_DIR at the project's configs/ directory"
        )
    return path


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with Hydra overrides (``key=value`` strings)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides or []))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"could not compose the config: {err}") from err


def to_root_config(raw: DictConfig | dict[str, Any]) -> RootConfig:
    """Merge a composed config onto the schema, check types, and validate values."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RootConfig), raw)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config does not match the schema: {err}") from err
    assert isinstance(cfg, RootConfig)
    validate_config(cfg)
    return cfg


def load_config(overrides: list[str] | None = None, config_name: str = "config") -> RootConfig:
    """Compose, type-check and validate the run's config: the one loader."""
    return to_root_config(compose_config(overrides, config_name))


def validate_config(cfg: RootConfig) -> None:
    """Check every value that the schema's types cannot, group by group; raise ConfigError."""
    validate_data(cfg.data)
    validate_partition(cfg.partition)
    validate_task(cfg.task, cfg.privacy)
    validate_encoder(cfg.encoder)
    validate_privacy(cfg.privacy)
    validate_train(cfg.train)
    validate_eval(cfg.eval)
    validate_pretrain(cfg.pretrain)
    validate_run_keys(cfg)
    validate_federation(cfg)
