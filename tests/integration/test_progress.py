"""What a run tells its operator (issue 15 items 5-6, issue 20 metrics): one progress line per
round on stderr, a summary table, no Flower noise by default, site ids only in metrics.json,
``rounds_completed`` counting completed rounds, and a first budget query that waits out start-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flwr.app import MetricRecord, RecordDict

import ssl_fed.fed.rounds as strategy
from ssl_fed.config import RootConfig, load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.progress import RoundProgress, summary_table
from ssl_fed.fed.rounds import RoundRecord, SiteRounds
from ssl_fed.fed.simulation import run_federation
from ssl_fed.fed.tracking import RunTracker
from tests.integration.conftest import TINY
from tests.secagg.helpers import task_identity

__all__ = ["task_identity"]  # the fixture that lets these tests build Flower Messages

LINE = re.compile(
    r"^round (\d+)/2: sites sampled/completed/dropped/declined (\d+)/(\d+)/(\d+)/(\d+), "
    r"ε max so far (\d+\.\d{3}), site-local losses: .+, \d+\.\d s/round, ETA .+$"
)


def _entry(rnd: int, wall: float, skipped: str | None = None) -> dict[str, Any]:
    return {
        "round": rnd,
        "sampled": [0, 1, 2],
        "completed": [] if skipped else [0, 1, 2],
        "dropped": [0, 1, 2] if skipped else [],
        "declined": [],
        "epsilon_max": 1.5,
        "wall_time_s": wall,
        "skipped": skipped,
    }


def test_progress_line_counts_sites_and_extrapolates_the_mean_round_time() -> None:
    # Prepare: 4 rounds planned; rounds of 10 s and 20 s (mean 15 s, 2 rounds left -> 30 s)
    progress = RoundProgress(4)
    # Execute
    progress.line(_entry(1, 10.0))
    line = progress.line(_entry(2, 20.0, skipped="too few survivors"))
    # Assert
    assert line.startswith("round 2/4: sites sampled/completed/dropped/declined 3/0/3/0, ")
    assert "ε max so far 1.500" in line and "15.0 s/round, ETA 30 s" in line
    assert line.endswith("SKIPPED (model unchanged): too few survivors")
    assert "site-local" not in line  # no losses in the entry: a deployed server sees none


def test_summary_table_has_one_row_per_round_and_counts_skips() -> None:
    table = summary_table([_entry(1, 10.0), _entry(2, 20.0, skipped="x")]).splitlines()
    assert table[0].split() == [
        "round",
        "sampled",
        "completed",
        "dropped",
        "declined",
        "ε",
        "max",
        "s",
        "status",
    ]
    assert table[1].split() == ["1", "3", "3", "0", "0", "1.500", "10.0", "ok"]
    assert table[2].split() == ["2", "3", "0", "3", "0", "1.500", "20.0", "skipped"]
    assert table[3] == "1 of 2 rounds completed, 1 skipped"


def _reply(node: int, site: int) -> SimpleNamespace:
    content = RecordDict({"budget": MetricRecord({"can-train": 1, "site": site})})
    return SimpleNamespace(
        metadata=SimpleNamespace(src_node_id=node), has_error=lambda: False, content=content
    )


@pytest.mark.usefixtures("task_identity")
def test_first_query_waits_out_start_up_and_silent_nodes_are_not_named(monkeypatch) -> None:
    # Prepare: nodes 111111111/222222222/333333333 are sites 0/1/2; 333333333 never answers
    cfg = RootConfig()
    cfg.aggregation.query_timeout = 7.0
    timeouts: list[float] = []

    def fake_send(grid: object, msgs: list[Any], timeout: float) -> list[SimpleNamespace]:
        timeouts.append(timeout)
        return [_reply(111111111, 0), _reply(222222222, 1)]

    monkeypatch.setattr(strategy, "send_and_receive", fake_send)
    rounds = SiteRounds(cfg, [], [], run_id="r", on_round_end=lambda rec, arrays: None)
    nodes = [111111111, 222222222, 333333333]
    # Execute
    _, first = rounds.plan_round(None, nodes, 1)  # type: ignore[arg-type]
    _, second = rounds.plan_round(None, nodes, 2)  # type: ignore[arg-type]
    reason = rounds.site_reason("node 222222222 and node 333333333 sent nothing")
    # Assert: only the first query waits STARTUP_TIMEOUT_FACTOR x; no node id becomes a site id
    assert timeouts == [7.0 * strategy.STARTUP_TIMEOUT_FACTOR, 7.0]
    assert first.sampled == [0, 1] and first.dropped == [] and first.unidentified_silent == 1
    assert second.unidentified_silent == 1
    assert reason == "node site 1 and node an unidentified node sent nothing"


def test_a_skipped_round_keeps_epsilon_and_is_not_counted_completed(tmp_path: Path, capfd) -> None:
    # Prepare: a deployed-style tracker resumed after one completed round at ε 2.5
    cfg = RootConfig()
    cfg.data.channels, cfg.out, cfg.sim.rounds = 1, str(tmp_path), 2
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    done = {**_entry(1, 5.0), "epsilon_max": 2.5}
    tracker = RunTracker(cfg, "run", [done], pooled=False)
    arrays = fa.state_to_arrays(fa.federated_state(tracker.model, False))
    rec = RoundRecord(2, sampled=[0, 1], skipped="2 sites sampled; needs at least 3")
    # Execute: no site reports ε in the skipped round
    tracker.end_round(rec, arrays)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Assert
    last = metrics["history"][-1]
    assert last["epsilon_max"] == 2.5 and last["epsilon_max_increase"] == 0.0
    assert metrics["rounds_completed"] == 1 and metrics["last_round"] == 2
    assert metrics["epsilon_max"] == 2.5
    assert "round 2/2: sites sampled/completed/dropped/declined 2/0/0/0" in capfd.readouterr().err


@pytest.mark.slow
def test_a_simulation_prints_one_line_per_round_and_names_sites_only(tmp_path: Path, capfd) -> None:
    # Prepare: 3 sites, 2 rounds, the tiny encoder
    cfg = load_config([*TINY, f"out={tmp_path}", "sim.num_sites=3", "sim.rounds=2"])
    # Execute
    metrics = run_federation(cfg)
    err = capfd.readouterr().err
    # Assert: one progress line per round, the table, and none of Flower's noise
    lines = [m for m in map(LINE.match, err.splitlines()) if m]
    assert [m.group(1) for m in lines] == ["1", "2"], err[-3000:]
    assert all(
        m.group(2) == str(len(metrics["history"][i]["sampled"])) for i, m in enumerate(lines)
    )
    assert "2 of 2 rounds completed, 0 skipped" in err
    assert "DEPRECATED FEATURE" not in err and "Manually terminating" not in err
    assert "DEBUG" not in err
    # Assert: every id in the history is a site id; rounds_completed counts completed rounds
    for h in metrics["history"]:
        for key in ("sampled", "completed", "dropped", "declined"):
            assert set(h[key]) <= {0, 1, 2}, (key, h[key])
    completed = sum(1 for h in metrics["history"] if not h["skipped"])
    assert metrics["rounds_completed"] == completed == 2
