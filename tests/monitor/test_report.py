"""The drift summary (hand-counted) and `ssl-fed monitor OUT_DIR`."""

import json

import pytest

from ssl_fed.cli import main
from ssl_fed.monitor.report import summarize


def _rec(site: int, rnd: int, alarm: int, drift: str | None = None, eps: float = 0.5) -> dict:
    return {
        "site": site,
        "round": rnd,
        "released": alarm,
        "local_alarm": False,
        "statistic": 0.1,
        "epsilon": 0.0,
        "drift": drift,
        "strength": None if drift is None else 0.5,
        "epsilon_total": eps,
    }


RECORDS = [
    # site 0: quiet, false alarm at round 2 that stands (latched) through round 4
    _rec(0, 1, 0), _rec(0, 2, 1), _rec(0, 3, 1), _rec(0, 4, 1),
    # site 1: drift from round 3, caught at round 4 -> delay 2
    _rec(1, 1, 0), _rec(1, 2, 0), _rec(1, 3, 0, "blur"), _rec(1, 4, 1, "blur", eps=0.25),
]  # fmt: skip


def test_summary_counts_by_hand() -> None:
    # Execute
    latched = summarize(RECORDS, latched=True)
    per_round = summarize(RECORDS, latched=False)
    # Assert: 6 quiet site-rounds; latched: one new alarm, per-round: three alarm rounds
    assert latched["quiet_site_rounds"] == 6
    assert latched["false_alarms"] == 1 and per_round["false_alarms"] == 3
    assert latched["false_alarm_rate"] == pytest.approx(1 / 6)
    assert latched["sites_with_false_alarm"] == 1
    assert latched["detection_delay"] == {"1": 2} and latched["detected_within_2"] == 1.0
    assert latched["epsilon_max"] == 0.5


def test_monitor_command_prints_drift_and_slices_and_writes_pngs(tmp_path, capsys) -> None:
    # Prepare: a drift log and a metrics.json with slices, as the runs write them
    (tmp_path / "drift.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (tmp_path / "drift_summary.json").write_text(
        json.dumps({"release": "dp-alarm", "mechanism": "svt", "latched": True})
    )
    slices = {
        "precision": {"0": 1.0, "1": 0.5},
        "recall": {"0": 0.5, "1": 1.0},
        "f1": {"0": 2 / 3, "1": 2 / 3},
        "support": {"0": 2, "1": 1},
        "macro": {"precision": 0.75, "recall": 0.75, "f1": 2 / 3},
        "worst_slice": "class 0 (F1 0.667)",
    }
    metrics = {"slices": slices, "ece": 0.1, "reliability": [[1.0, 0.67, 0.9, 3]]}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    # Execute
    rc = main(["monitor", str(tmp_path)])
    out = capsys.readouterr().out
    # Assert
    assert rc == 0
    assert "false alarms: 1 / 6 quiet site-rounds" in out
    assert "site 1: drift detected after 2 round(s)" in out
    assert "worst slice: class 0 (F1 0.667)" in out
    assert (tmp_path / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_monitor_command_on_an_empty_directory_is_one_error_line(tmp_path, capsys) -> None:
    assert main(["monitor", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_drift_scalars_for_the_tracker() -> None:
    from ssl_fed.monitor.report import drift_scalars

    assert drift_scalars({3: 1, 0: 0}) == {
        "drift/alarm/site_0": 0.0,
        "drift/alarm/site_3": 1.0,
        "drift/alarms": 1.0,
    }
