"""An exhausted site declines while the run goes on; a killed run resumes without double charges."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_fed.config import epsilon_budget, load_config
from ssl_fed.fed.simulation import run_federation
from ssl_fed.privacy.ledger import PrivacyLedger
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow


def _ledger(out: Path, site: int, cfg) -> PrivacyLedger:  # type: ignore[no-untyped-def]
    pr = cfg.privacy
    return PrivacyLedger(out / "sites" / f"site_{site}", budget=epsilon_budget(pr), delta=pr.delta)


def test_exhausted_site_declines_and_resume_keeps_ledgers_consistent(tmp_path: Path) -> None:
    # Prepare: site 0 already spent its whole budget in an earlier run (4 sites, so that the 3
    # willing ones still make a secure-aggregation round)
    base = [*TINY, f"out={tmp_path}", "sim.num_sites=4", "sim.rounds=2", "eval.every=2"]
    cfg = load_config(base)
    PrivacyLedger(tmp_path / "sites" / "site_0", budget=1000.0, delta=cfg.privacy.delta).charge(
        run_id="earlier", round=1, noise_multiplier=0.5, sample_rate=1.0, steps=40, sensitivity=1.0
    )
    # Execute: run 1 is "killed" after round 1, run 2 resumes it
    first = run_federation(load_config([*base, "sim.halt_after_round=1"]))
    second = run_federation(load_config([*base, "resume=true"]))
    # Assert: site 0 declined every round, the others trained each round exactly once
    assert first["rounds_completed"] == 1
    assert second["rounds_completed"] == 2
    assert second["run_id"] == first["run_id"]
    assert [h["round"] for h in second["history"]] == [1, 2]
    assert all(h["declined"] == [0] for h in second["history"])
    assert all(h["completed"] == [1, 2, 3] for h in second["history"])
    for site in (1, 2, 3):
        entries = _ledger(tmp_path, site, cfg).entries_for(first["run_id"])
        assert [e.round for e in entries] == [1, 2]
    assert _ledger(tmp_path, 0, cfg).entries_for(first["run_id"]) == []
    assert second["epsilon_max"] <= 8.0 + 1e-6 or second["epsilon_per_site"]["0"] > 8.0
    assert max(v for k, v in second["epsilon_per_site"].items() if k != "0") <= 8.0 + 1e-6
