"""Aggregation on seeded fake deltas: SecAgg vs plain, dropout, a skipped round, stock SecAgg+.

Two 2-round runs on the same fake sites (6 sites; site ``s`` sends ``fake_delta(s, round)``):

- ``secagg`` (default): round 1, sites 1 and 4 (33%) die in the masked-input stage; round 2, five
  of six die, so too few survive and SecAgg skips the round.
- ``plain``: round 1 with the same dropouts; round 2, unguarded site 3 sends NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.simulation import run_simulation

from ssl_fed.config import RootConfig, load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators import build_aggregator
from ssl_fed.fed.serverapp import make_server_app
from ssl_fed.models import build_model
from tests.integration.conftest import TINY
from tests.integration.fake_sites import fake_delta, make_fake_app

pytestmark = pytest.mark.slow
SITES = 6
DROP_R1 = {1, 4}
FLOAT32_SLACK = 4 * float(np.spacing(np.float32(4.0)))  # base + delta is stored in float32


def _simulate(
    out: Path,
    aggregation: str,
    rounds: int,
    drop: Mapping[int, set[int]],
    poison: Mapping[int, set[int]],
    guard: bool,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    cfg = load_config(
        [
            *TINY,
            f"out={out}",
            f"sim.num_sites={SITES}",
            f"sim.rounds={rounds}",
            f"aggregation={aggregation}",
            "eval.every=5",
            *(extra or []),
        ]
    )
    torch.manual_seed(cfg.sim.seed)
    init = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))
    run_simulation(
        server_app=make_server_app(cfg),
        client_app=make_fake_app(cfg, drop, poison, guard),
        num_supernodes=SITES,
        backend_config={"client_resources": {"num_cpus": 1.0, "num_gpus": 0.0}},
    )
    ckpt = torch.load(out / "checkpoints/last.pt", weights_only=False)
    applied = [np.asarray(c, np.float64) - i for c, i in zip(ckpt["arrays"], init, strict=True)]
    return {"cfg": cfg, "applied": applied, "history": ckpt["history"], "out": out}


def _expected(cfg: RootConfig, sites: list[int], round: int) -> list[np.ndarray]:
    specs = fa.array_specs(build_model(cfg.encoder, 1), False)
    deltas = [fake_delta(specs, s, round) for s in sites]
    return [
        np.mean([np.asarray(d[i], np.float64) for d in deltas], axis=0) for i in range(len(specs))
    ]


def _max_err(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def secagg(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("secagg")
    drop = {1: DROP_R1, 2: {0, 1, 2, 3, 4}}
    return _simulate(out, "secagg", 2, drop, {}, guard=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("plain")
    return _simulate(out, "plain", 2, {1: DROP_R1}, {2: {3}}, guard=False)


def test_secagg_with_dropout_equals_survivors_mean(secagg: dict[str, Any]) -> None:
    # Assert: round 1 completed with the 4 survivors; error within the stated bound
    cfg, history = secagg["cfg"], secagg["history"]
    survivors = [s for s in range(SITES) if s not in DROP_R1]
    assert history[0]["completed"] == survivors
    assert history[0]["dropped"] == sorted(DROP_R1)
    assert history[0]["skipped"] is None
    assert "losses" not in history[0] and "site_local_losses" not in history[0]  # never leave
    bound = build_aggregator(cfg).quantization_bound()
    assert 0 < bound < 1e-7
    assert _max_err(secagg["applied"], _expected(cfg, survivors, 1)) <= bound + FLOAT32_SLACK


def test_skipped_round_keeps_the_model_and_is_counted(secagg: dict[str, Any]) -> None:
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Assert: round 2 is skipped with a reason; the model holds round 1's update only
    cfg, history = secagg["cfg"], secagg["history"]
    assert history[1]["completed"] == []
    assert "collect" in history[1]["skipped"]
    survivors = [s for s in range(SITES) if s not in DROP_R1]
    assert _max_err(secagg["applied"], _expected(cfg, survivors, 1)) <= 1e-6
    acc = EventAccumulator(str(secagg["out"] / "tb"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("secagg/skipped_rounds")] == [0, 1]
    metrics = json.loads((secagg["out"] / "metrics.json").read_text())
    assert metrics["secure_aggregation"] == "ssl-fed-secagg+"
    assert metrics["skipped_rounds"] == 1 and metrics["rounds_completed"] == 1
    assert metrics["last_round"] == 2
    assert history[1]["epsilon_max"] >= history[0]["epsilon_max"]


def test_plain_rejects_malformed_and_secagg_agrees_within_bound(
    plain: dict[str, Any], secagg: dict[str, Any]
) -> None:
    # Assert: plain round 2 went on without the NaN site
    cfg, history = plain["cfg"], plain["history"]
    honest = [s for s in range(SITES) if s != 3]
    survivors = [s for s in range(SITES) if s not in DROP_R1]
    assert history[1]["completed"] == honest and 3 in history[1]["dropped"]
    second = _expected(cfg, honest, 2)
    both = [a + b for a, b in zip(_expected(cfg, survivors, 1), second, strict=True)]
    assert _max_err(plain["applied"], both) <= FLOAT32_SLACK
    # Assert: on the same round-1 updates, SecAgg and plain agree within the SecAgg bound
    plain_r1 = [a - b for a, b in zip(plain["applied"], second, strict=True)]
    bound = build_aggregator(secagg["cfg"]).quantization_bound()
    assert _max_err(secagg["applied"], plain_r1) <= bound + 2 * FLOAT32_SLACK


def test_flower_secaggplus_still_runs_with_dropout(tmp_path: Path) -> None:
    # Prepare: Flower's stock SecAgg+; 5 shares, threshold 3 tolerate any two dropouts
    extra = ["aggregation.num_shares=5", "aggregation.reconstruction_threshold=3"]
    # Execute
    run = _simulate(tmp_path, "flower-secaggplus", 1, {1: DROP_R1}, {}, True, extra)
    # Assert
    cfg, history = run["cfg"], run["history"]
    survivors = [s for s in range(SITES) if s not in DROP_R1]
    assert history[0]["completed"] == survivors
    bound = build_aggregator(cfg).quantization_bound()
    assert bound == pytest.approx(0.5 / 2**22)
    assert _max_err(run["applied"], _expected(cfg, survivors, 1)) <= bound + FLOAT32_SLACK
