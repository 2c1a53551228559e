"""A distributed-noise site keeps its loss line (and drift reading) locally, as in local mode."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_fed.config import TaskConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import allowed_fit_metrics, check_scalars
from ssl_fed.models import build_model
from ssl_fed.privacy.policy import SitePolicy
from ssl_fed.site import ddp, node
from ssl_fed.site.ddp import DDP_ARRAY
from ssl_fed.site.rounds import SITE_METRICS_FILE, declared_update, train_site_round
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd import clipped_rows, sample_units
from ssl_fed.train.randomness import UnitStreams, unit_ids
from tests.helpers import images, tiny_task
from tests.site.test_rounds import tiny_config


def test_clipped_rows_report_the_mean_loss_terms_computed_one_unit_at_a_time():
    # Prepare: group units of the joint task (two loss terms), one Poisson sample
    task = tiny_task("joint").float()
    plan = plan_units(task, TaskConfig(name="joint", temperature=0.5), 12)
    data = ImageDataset(images(40, seed=3), None, "test")
    streams = UnitStreams(bytes([7]) * 32, unit_ids(data.images))
    units, mask = sample_units(task, data, plan, streams, step=0, sample_rate=0.4)

    # Execute
    losses: dict[str, float] = {}
    clipped_rows(task, units, mask, 0.5, losses=losses)

    # Assert: the per-image mean of every term, summed unit by unit through the task itself
    with torch.no_grad():
        per_unit = [task(units[i : i + 1], mask[i : i + 1]) for i in range(units.shape[0])]
    assert set(losses) == set(per_unit[0]) and len(losses) >= 2
    for name, value in losses.items():
        expected = sum(float(t[name].sum()) for t in per_unit) / float(mask.sum())
        assert value == pytest.approx(expected, rel=1e-5)


def test_a_dp_alarm_site_may_send_its_drift_bit_in_distributed_mode(monkeypatch):
    # Prepare: the declared update of a distributed site (its size only: no σ calibration)
    monkeypatch.setattr(ddp, "public_round", lambda cfg, channels: SimpleNamespace(dim=10))
    cfg = tiny_config()
    cfg.privacy.enabled, cfg.privacy.noise = True, "distributed"
    alarm = SitePolicy(epsilon_budget=8.0, drift_release="dp-alarm", noise_modes=("distributed",))

    # Execute
    specs, names = declared_update(cfg, 1, alarm)
    _, without = declared_update(cfg, 1, None)

    # Assert: the one int64 array; the bit only under the site's own dp-alarm policy
    assert [(s.name, s.dtype) for s in specs] == [(DDP_ARRAY, "int64")]
    assert "drift-alarm" in names and "drift-alarm" not in without


@pytest.mark.slow
def test_a_distributed_round_writes_the_site_line_and_runs_the_drift_monitor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Prepare: a deployed site of 48 images, size 32 declared, distributed noise, drift on
    cfg = tiny_config()
    cfg.privacy.enabled, cfg.privacy.noise = True, "distributed"
    cfg.data.public_size, cfg.sim.num_sites, cfg.sim.rounds = 32, 3, 2
    data = ImageDataset(images(48), None, "d")
    monkeypatch.setattr(node, "site_data", lambda cfg, info: data)
    conf = {"data-path": "x.npz", "state-dir": str(tmp_path / "state"), "public-size": 32}
    info = node.site_info(cfg, {**conf, "epsilon-budget": 8.0})
    policy = SitePolicy(epsilon_budget=8.0, drift_release="local", noise_modes=("distributed",))
    received = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))

    # Execute
    result = train_site_round(cfg, info, received, None, "run", 1, policy)

    # Assert: one int64 array and the ε scalars leave; the losses and drift reading stay local
    assert len(result.delta) == 1 and result.delta[0].dtype == np.int64
    check_scalars(result.scalars, allowed_fit_metrics(), budget=8.0)
    assert DDP_ARRAY not in result.scalars and "drift-alarm" not in result.scalars
    line = json.loads((tmp_path / "state" / SITE_METRICS_FILE).read_text().splitlines()[-1])
    assert line["run_id"] == "run" and line["round"] == 1 and line["steps"] == 1
    assert set(line["losses"]) == {"rotation"}
    assert all(math.isfinite(v) and v > 0 for v in line["losses"].values())
    assert "statistic" in json.dumps(line["drift"])
