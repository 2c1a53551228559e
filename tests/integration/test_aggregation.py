"""SecAgg+ vs plain on seeded fake deltas: dropout, quantization bound, malformed updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.simulation import run_simulation

from server.app import make_server_app
from ssl_fed.config import RootConfig, load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.secagg import quantization_bound
from ssl_fed.models import build_model
from tests.integration.conftest import TINY
from tests.integration.fake_sites import fake_delta, make_fake_app

pytestmark = pytest.mark.slow
SITES = 6


def _simulate(
    out: Path,
    aggregation: str,
    drop: set[int],
    poison: set[int],
    guard: bool,
    extra: list[str] | None = None,
) -> tuple[RootConfig, list[fa.NDArray], list[fa.NDArray]]:
    cfg = load_config(
        [
            *TINY,
            f"out={out}",
            f"sim.num_sites={SITES}",
            "sim.rounds=1",
            f"aggregation={aggregation}",
            "aggregation.timeout=30",
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
    return cfg, applied, ckpt["history"]


def _expected(cfg: RootConfig, sites: list[int]) -> list[np.ndarray]:
    specs = fa.array_specs(build_model(cfg.encoder, 1), False)
    deltas = [fake_delta(specs, s) for s in sites]
    return [
        np.mean([np.asarray(d[i], np.float64) for d in deltas], axis=0) for i in range(len(specs))
    ]


def _max_err(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def test_secagg_with_dropout_equals_survivors_mean(tmp_path: Path) -> None:
    # Prepare: 2 of 6 sites (33%) die in the masked-vector stage; 5 shares, threshold 3 keep
    # every neighbourhood (itself + 4 neighbours) above threshold whichever two die
    drop = {1, 4}
    # Execute
    cfg, applied, history = _simulate(
        tmp_path,
        "secaggplus",
        drop,
        set(),
        guard=True,
        extra=["aggregation.num_shares=5", "aggregation.reconstruction_threshold=3"],
    )
    # Assert: the round completed with the 4 survivors; error within the stated bound
    survivors = [s for s in range(SITES) if s not in drop]
    assert history[0]["completed"] == survivors
    assert history[0]["dropped"] == sorted(drop)
    bound = quantization_bound(cfg.aggregation)
    float32_slack = 2 * np.spacing(np.float32(4.0))  # base + delta is stored in float32
    assert _max_err(applied, _expected(cfg, survivors)) <= bound + float32_slack
    assert 0 < bound < 1e-6


def test_plain_rejects_malformed_and_agrees_with_secagg_bound(tmp_path: Path) -> None:
    # Prepare: site 3 has no guard and sends NaN; the server must reject it and go on
    cfg, applied, history = _simulate(tmp_path, "plain", set(), {3}, guard=False)
    honest = [s for s in range(SITES) if s != 3]
    # Assert
    assert history[0]["completed"] == honest
    assert 3 in history[0]["dropped"]
    bound = 1.2e-7
    assert _max_err(applied, _expected(cfg, honest)) <= bound + 2 * np.spacing(np.float32(4.0))
