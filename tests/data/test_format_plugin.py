"""A new data format from ONE loader file and ONE YAML file (docs/examples/npy_format.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ssl_fed.config import ConfigError, load_config
from ssl_fed.data.loaders import load_splits
from ssl_fed.data.registry import DATASETS
from ssl_fed.plugins import import_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def npy_format(tmp_path, monkeypatch):
    """Register the example format from a temporary module; point the loader at a configs/ copy."""
    plugin = tmp_path / "npy_example.py"
    shutil.copy(ROOT / "docs" / "examples" / "npy_format.py", plugin)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copy(ROOT / "docs" / "examples" / "npy.yaml", tmp_path / "configs" / "data" / "npy.yaml")
    monkeypatch.setenv("SSL_FED_CONFIG_DIR", str(tmp_path / "configs"))
    import_file(plugin)
    yield tmp_path
    DATASETS.pop("npy", None)
    sys.modules.pop("ssl_fed_plugin_npy_example", None)


def test_a_format_from_one_file_and_one_yaml_loads(npy_format):
    # Prepare: 5 images of 10x10, uint8
    file = npy_format / "images.npy"
    np.save(file, np.arange(500, dtype=np.uint8).reshape(5, 10, 10) % 200)

    # Execute
    cfg = load_config(["data=npy", f"data.path={file}", f"out={npy_format / 'out'}"])
    splits = load_splits(cfg.data)

    # Assert: resized to the YAML's 28 pixels, scaled to [0, 1], unlabelled (no test split)
    assert splits.train.images.shape == (5, 1, 28, 28)
    assert 0.0 <= float(splits.train.images.min()) <= float(splits.train.images.max()) <= 1.0
    assert splits.test is None


def test_without_the_plugin_the_name_is_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"data.name='npy' is invalid: use one of .*digits"):
        load_config(["data.name=npy", f"data.path={tmp_path}"])
