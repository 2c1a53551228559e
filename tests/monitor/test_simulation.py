"""The monitor-level drift simulation end to end, small: log, summary, TensorBoard, refusal."""

import json

import pytest

from simulations.drift import main


@pytest.mark.slow
def test_small_run_writes_one_line_per_site_and_round_and_catches_a_strong_drift(
    tmp_path, capsys
) -> None:
    # Prepare: 3 sites, 4 rounds, site 2 rotated a quarter turn from round 3; local alerts
    out = tmp_path / "run"
    drift = "sim.drift=[{site: 2, round: 3, kind: rotate, strength: 1.0}]"
    args = ["--window", "100", "--reference", "200", "--release", "local", str(out)]
    # Execute
    rc = main([*args, "sim.num_sites=3", "sim.rounds=4", drift])
    # Assert
    assert rc == 0
    lines = [json.loads(x) for x in (out / "drift.jsonl").read_text().splitlines()]
    assert sorted((r["site"], r["round"]) for r in lines) == [
        (s, r) for s in range(3) for r in range(1, 5)
    ]
    assert all(r["released"] is None and r["epsilon"] == 0.0 for r in lines)
    summary = json.loads((out / "drift_summary.json").read_text())
    assert summary["detection_delay"] == {"2": 1}
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    # Execute / Assert: the same OUT_DIR again is refused, nothing overwritten
    before = (out / "drift.jsonl").read_bytes()
    assert main([*args, "sim.num_sites=3", "sim.rounds=4"]) == 2
    assert (out / "drift.jsonl").read_bytes() == before
    assert "exists" in capsys.readouterr().err
