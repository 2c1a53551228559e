"""Server-side outputs: the probe is labelled (or absent when deployed); no round means failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssl_fed import cli
from ssl_fed.config import RootConfig
from ssl_fed.fed.tracking import RunTracker


def tracker(tmp_path: Path, *, pooled: bool) -> RunTracker:
    cfg = RootConfig()
    cfg.data.channels = 1
    cfg.out = str(tmp_path)
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    return RunTracker(cfg, "run", [], pooled=pooled)


def test_the_simulation_probe_is_labelled_a_pooled_benchmark_outside_the_guarantee(tmp_path):
    t = tracker(tmp_path, pooled=True)
    metrics = t.write_metrics()
    t.close()
    assert t.splits is not None
    assert metrics["evaluation"]["kind"] == "pooled-benchmark"
    assert "outside the privacy guarantee" in metrics["evaluation"]["label"]
    assert metrics["evaluation"]["tensorboard_prefix"] == "benchmark_pooled_outside_dp"


def test_a_server_built_from_a_run_config_loads_no_site_data_and_does_not_probe(tmp_path):
    t = tracker(tmp_path, pooled=False)
    metrics = t.write_metrics()
    t.close()
    assert t.splits is None and metrics["evaluation"]["kind"] == "none"
    assert metrics["linear_probe"] is None


def fake_simulation(history: list[dict[str, Any]]) -> Any:
    """Stand-in for ``flwr.simulation.run_simulation`` that writes the server's metrics.json."""

    def run(
        server_app: Any,
        client_app: Any,
        num_supernodes: int,
        backend_config: Any,
        verbose_logging: bool = False,
    ) -> None:
        out = Path(server_app.test_out)
        (out / "metrics.json").write_text(json.dumps({"history": history, "linear_probe": None}))

    return run


@pytest.mark.parametrize(
    "history",
    [
        [],
        [{"round": 1, "completed": [], "declined": [0, 1, 2], "dropped": [], "skipped": None}],
        [{"round": 1, "completed": [0, 1], "declined": [], "dropped": [2], "skipped": "too few"}],
    ],
)
def test_a_simulation_that_completes_no_round_exits_2_with_one_error_line(
    monkeypatch, tmp_path, capsys, history
):
    # Prepare: the federation "runs" but no round updated the model
    import flwr.simulation

    import ssl_fed.fed.serverapp as serverapp

    real = serverapp.make_server_app

    def make(cfg: RootConfig, *, pooled: bool = False) -> Any:
        app = real(cfg, pooled=pooled)
        app.test_out = cfg.out  # type: ignore[attr-defined]
        return app

    monkeypatch.setattr(serverapp, "make_server_app", make)
    monkeypatch.setattr(flwr.simulation, "run_simulation", fake_simulation(history))

    # Execute
    code = cli.main(["simulate", f"out={tmp_path}", "sim.num_sites=3"])

    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: the simulation completed no round")


def test_a_run_with_one_applied_round_passes_the_check(tmp_path):
    from ssl_fed.fed.simulation import check_some_round_completed

    history = [
        {"round": 1, "completed": [], "declined": [0], "dropped": [], "skipped": None},
        {"round": 2, "completed": [1, 2], "declined": [0], "dropped": [], "skipped": None},
    ]
    check_some_round_completed({"history": history}, tmp_path / "metrics.json")


@pytest.mark.slow
def test_a_real_simulation_whose_sites_all_decline_fails_with_the_reason(tmp_path):
    # Prepare: σ fixed so low that one training costs more than every site's budget
    from ssl_fed.config import load_config
    from ssl_fed.fed.simulation import NoRoundCompletedError, run_federation
    from tests.integration.conftest import TINY

    overrides = ["sim.num_sites=3", "sim.rounds=1", "privacy.noise_multiplier=0.3"]
    cfg = load_config([*TINY, f"out={tmp_path}", *overrides, "privacy.target_epsilon=0.1"])

    # Execute / Assert: the run is an error, and metrics.json records why
    with pytest.raises(NoRoundCompletedError, match="completed no round"):
        run_federation(cfg)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert all(h["completed"] == [] for h in history)
