from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "encoder.width=8",
    "encoder.norm_groups=4",
    "encoder.proj_hidden=16",
    "encoder.proj_dim=8",
    "train.local_epochs=1",
    "eval.draws=1",
    "eval.labels_per_class=[1,5]",
    # Generous waits: the failures these tests inject reply at once, and a loaded CI machine
    # must not turn a slow site into a dropped one.
    "aggregation.query_timeout=300",
    "aggregation.stage_timeout=300",
    "aggregation.timeout=600",
]


@pytest.fixture(scope="session", autouse=True)
def _simulation_env() -> None:
    """Ray workers inherit the environment: let them import ``tests`` and stay offline."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
