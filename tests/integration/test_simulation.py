"""End to end: 3 simulated sites, 2 rounds of ssl-fed SecAgg (the default) on digits,
starting from a (tiny) synthetic warm start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssl_fed.config import epsilon_budget, load_config
from ssl_fed.export import export_run
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.simulation import run_federation
from ssl_fed.models import build_model
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.train.pretrain import load_warm_start, pretrain_synthetic, save_warm_start
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    warm = tmp_path_factory.mktemp("warm")
    pcfg = load_config([*TINY, "train.batch_size=32"], config_name="pretrain")
    model, card = pretrain_synthetic(pcfg, family="strokes", num_images=64, epochs=1)
    save_warm_start(model, card, warm)
    cfg = load_config([*TINY, f"out={out}", "sim.num_sites=3", "sim.rounds=2", f"init={warm}"])
    metrics = run_federation(cfg)
    return {"out": Path(out), "cfg": cfg, "metrics": metrics, "warm": Path(warm)}


def test_global_encoder_changed(run: dict[str, Any]) -> None:
    # Prepare: the server's initial encoder is the warm start
    cfg = run["cfg"]
    model = build_model(cfg.encoder, 1)
    model.encoder.load_state_dict(load_warm_start(run["warm"])[0])
    init = fa.state_to_arrays(fa.federated_state(model, False))
    # Execute
    ckpt = torch.load(run["out"] / "checkpoints/last.pt", weights_only=False)
    # Assert
    assert ckpt["round"] == 2
    assert max(float(np.abs(a - b).max()) for a, b in zip(ckpt["arrays"], init, strict=True)) > 0


def test_metrics_json(run: dict[str, Any]) -> None:
    m = json.loads((run["out"] / "metrics.json").read_text())
    assert m["rounds_completed"] == 2
    assert m["secure_aggregation"] == "ssl-fed-secagg+"
    assert 0 < m["quantization_bound"] < 1e-7
    assert m["skipped_rounds"] == 0
    assert [h["skipped"] for h in m["history"]] == [None, None]
    assert set(m["epsilon_per_site"]) == {"0", "1", "2"}
    assert 0 < m["epsilon_max"] <= 8.0 + 1e-6
    assert set(m["linear_probe"]) == {"1", "5"}
    assert m["evaluation"]["kind"] == "pooled-benchmark"
    assert all(
        "losses" not in h and set(h["site_local_losses"]) == {"rotation", "contrastive"}
        for h in m["history"]
    )
    assert [h["completed"] for h in m["history"]] == [[0, 1, 2], [0, 1, 2]]
    assert (run["out"] / "config.yaml").is_file()


def test_the_run_and_its_model_card_name_the_initialisation(
    run: dict[str, Any], tmp_path: Path
) -> None:
    # Execute
    export_run(run["out"], "torchscript", tmp_path)

    # Assert
    assert run["metrics"]["init"]["kind"] == "warm-start"
    assert run["metrics"]["init"]["site_budget_consumed"] is False
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["initialisation"]["path"] == str(run["warm"])
    assert "Initialisation" in (tmp_path / "model_card.md").read_text()


def test_every_ledger_advanced_once_per_round(run: dict[str, Any]) -> None:
    cfg, m = run["cfg"], run["metrics"]
    for site in range(3):
        ledger = PrivacyLedger(
            run["out"] / "sites" / f"site_{site}",
            budget=epsilon_budget(cfg.privacy),
            delta=cfg.privacy.delta,
        )
        assert [e.round for e in ledger.entries_for(m["run_id"])] == [1, 2]
        assert ledger.epsilon() == pytest.approx(m["epsilon_per_site"][str(site)])


def test_tensorboard_has_epsilon_and_loss(run: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run["out"] / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "privacy/epsilon/site_0",
        "privacy/epsilon/max",
        "site_local/loss/rotation",
        "site_local/loss/contrastive",
        "benchmark_pooled_outside_dp/knn",
        "secagg/skipped_rounds",
    } <= tags
    assert [e.step for e in acc.Scalars("privacy/epsilon/max")] == [1, 2]
