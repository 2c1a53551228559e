"""Defaults live once (the schema); names are checked against the registries, not lists."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from ssl_fed.cli import main
from ssl_fed.config import ConfigError, RootConfig, load_config
from ssl_fed.data.registry import DATASETS
from ssl_fed.models import ENCODERS
from ssl_fed.tasks import TASKS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GROUPS = {
    f.name for f in dataclasses.fields(RootConfig) if dataclasses.is_dataclass(f.default_factory)
}


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict to ``{"a.b": value}``."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out |= leaves(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def yaml_files() -> list[tuple[str, Path]]:
    """Every YAML file with the config path its keys sit under ("" = the root)."""
    files = [("", CONFIGS / "config.yaml"), ("", CONFIGS / "pretrain.yaml")]
    for group in sorted(p for p in CONFIGS.iterdir() if p.is_dir()):
        files += [(group.name, f) for f in sorted(group.glob("*.yaml"))]
    return files


SCHEMA_DEFAULTS = leaves(dataclasses.asdict(RootConfig()))


@pytest.mark.parametrize(("group", "path"), yaml_files(), ids=lambda x: str(x))
def test_no_yaml_file_restates_a_schema_default(group: str, path: Path) -> None:
    # Prepare
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(raw, dict)
    raw.pop("defaults", None)

    # Execute
    keys = leaves(raw, group)

    # Assert: every key exists in the schema and differs from its default, except the key that
    # names the file's own choice (configs/task/joint.yaml says name: joint)
    own_choice = {f"{group}.name", f"{group}.kind"}
    restated = {
        k: v
        for k, v in keys.items()
        if k in SCHEMA_DEFAULTS
        and SCHEMA_DEFAULTS[k] == v
        and not (k in own_choice and v == path.stem)
    }
    assert set(keys) <= set(SCHEMA_DEFAULTS), set(keys) - set(SCHEMA_DEFAULTS)
    assert restated == {}


def test_the_schema_groups_have_yaml_groups() -> None:
    assert {"data", "task", "encoder", "privacy", "aggregation"} <= GROUPS
    assert {p.name for p in CONFIGS.iterdir() if p.is_dir()} <= GROUPS


def test_the_main_job_evaluates_every_four_rounds() -> None:
    # The value the main job used before defaults moved into the schema (configs/eval: 4)
    assert load_config().eval.every == RootConfig().eval.every == 4


def test_a_key_only_in_the_schema_can_still_be_overridden() -> None:
    cfg = load_config(["encoder.width=16", "data.augment.noise_std=0.1", "sim.client_cpus=2"])
    assert (cfg.encoder.width, cfg.data.augment.noise_std, cfg.sim.client_cpus) == (16, 0.1, 2.0)


@pytest.mark.parametrize(
    ("key", "registry"),
    [("task.name", TASKS), ("data.name", DATASETS), ("encoder.name", ENCODERS)],
)
def test_an_unknown_name_lists_every_registered_one(key: str, registry: dict[str, Any]) -> None:
    # Execute
    with pytest.raises(ConfigError) as err:
        load_config([f"{key}=no_such_name"])

    # Assert: one line, naming the field and every registered name
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{key}='no_such_name' is invalid")
    assert all(name in message for name in registry)


def test_an_unknown_task_is_one_error_line_and_exit_2(capsys, tmp_path) -> None:
    # Execute
    code = main(["train-local", "task.name=no_such_task", f"out={tmp_path / 'out'}"])

    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"error: task.name='no_such_task' is invalid: use one of {', '.join(sorted(TASKS))}"
    ]
    assert not (tmp_path / "out").exists()
