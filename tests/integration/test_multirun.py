"""Hydra --multirun: one run directory per job, even with an explicit out=."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, TINY

pytestmark = pytest.mark.slow


def test_multirun_sweep_writes_one_run_per_job(tmp_path: Path) -> None:
    # Execute: a two-job sweep over the privacy target, 3 sites, 1 round each
    cmd = [
        sys.executable,
        "-m",
        "simulations.run",
        "--multirun",
        *TINY,
        "sim.num_sites=3",
        "sim.rounds=1",
        "privacy.target_epsilon=2,4",
        f"out={tmp_path}/sweep",
        f"hydra.sweep.dir={tmp_path}/hydra",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    # Assert: two complete runs, each within its own target
    assert done.returncode == 0, done.stderr[-2000:]
    for job, target in (("0", 2.0), ("1", 4.0)):
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert metrics["rounds_completed"] == 1 and metrics["skipped_rounds"] == 0
        assert 0 < metrics["epsilon_max"] <= target
