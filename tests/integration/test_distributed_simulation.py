"""End to end: ``privacy.noise=distributed`` through the Flower round loop.

- ``ssl-fed simulate`` with 4 real sites, 2 rounds: every ledger holds one Skellam entry per
  round, ε is the Skellam accountant's, metrics.json and TensorBoard carry the round scalars.
- Fake sites with known integer inputs, min_noisy_sites = 3. Round 1: one site dies after key
  sharing (masked-input stage); the round completes with the 3 survivors and the server's step
  equals the decoded sum of the survivors' inputs within the rounding bound. Round 2: two die,
  the 2 survivors are below min_noisy_sites and the sum is not unmasked. No masked input the
  server captured is a site's encoded input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.simulation import run_simulation

from ssl_fed.cli import main
from ssl_fed.config import RootConfig, epsilon_budget, load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed import secagg_driver
from ssl_fed.fed.aggregators import build_aggregator
from ssl_fed.fed.guard import allowed_fit_metrics, make_guard_mod
from ssl_fed.fed.layout import CONFIG
from ssl_fed.fed.messages import train_reply
from ssl_fed.fed.serverapp import make_server_app
from ssl_fed.models import build_model
from ssl_fed.privacy import skellam
from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.rotation import rotate
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.site.ddp import ddp_spec
from ssl_fed.train.fedsgd_public import public_round
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow
DDP = [
    "privacy.noise=distributed",
    "data.public_size=64",
    "train.batch_size=16",
    "sim.num_sites=4",
    "sim.rounds=2",
]
KEYS = ("privacy/noise_std_aggregate", "secagg/bits", "secagg/wrap_margin_sd", "secagg/gamma")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ddp-sim")
    code = main(["simulate", *TINY, *DDP, f"out={out}"])
    cfg = load_config([*TINY, *DDP, f"out={out}"])
    return {
        "code": code,
        "out": out,
        "cfg": cfg,
        "metrics": json.loads((out / "metrics.json").read_text()),
    }


def test_simulate_runs_both_rounds(run: dict[str, Any]) -> None:
    assert run["code"] == 0
    history = run["metrics"]["history"]
    assert [h["completed"] for h in history] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert all(h["skipped"] is None for h in history)


def test_every_ledger_holds_one_skellam_entry_per_round(run: dict[str, Any]) -> None:
    # Prepare: the public plan both sides derive; an independent Skellam recomputation
    cfg, m = run["cfg"], run["metrics"]
    p = public_round(cfg, 1)
    step = skellam.SkellamStep(
        p.plan.noise_multiplier,
        p.sample_rate,
        1,
        p.plan.ddp.l2_sensitivity,
        p.plan.ddp.l1_sensitivity,
    )
    expected = skellam.epsilon_for_history([step, step], cfg.privacy.delta)
    for site in range(4):
        # Execute
        ledger = PrivacyLedger(
            run["out"] / "sites" / f"site_{site}",
            budget=epsilon_budget(cfg.privacy),
            delta=cfg.privacy.delta,
        )
        entries = ledger.entries_for(m["run_id"])
        # Assert
        assert [(e.round, e.mechanism, e.steps) for e in entries] == [
            (1, "skellam", 1),
            (2, "skellam", 1),
        ]
        assert entries[0].ddp is not None and entries[0].ddp["bits"] == cfg.privacy.ddp_bits
        assert ledger.epsilon() == pytest.approx(expected, rel=1e-9)
        assert m["epsilon_per_site"][str(site)] == pytest.approx(expected, rel=1e-9)
    assert expected <= cfg.privacy.target_epsilon + 1e-6


def test_round_scalars_reach_metrics_json_and_tensorboard(run: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    p = public_round(run["cfg"], 1).plan.ddp
    for h in run["metrics"]["history"]:
        assert set(KEYS) <= set(h["ddp"])
        assert h["ddp"]["privacy/noise_std_aggregate"] == pytest.approx(p.noise_std(4))
        assert h["ddp"]["secagg/wrap_margin_sd"] >= p.k_required
    acc = EventAccumulator(str(run["out"] / "tb"))
    acc.Reload()
    assert set(KEYS) <= set(acc.Tags()["scalars"])


def test_codec_bound_site_losses_and_server_optimizer_state_reach_the_outputs(
    run: dict[str, Any],
) -> None:
    from ssl_fed.fed.tracking import load_checkpoint

    p = public_round(run["cfg"], 1).plan.ddp
    assert run["metrics"]["quantization_bound"] == pytest.approx(p.gamma * p.padded**0.5)
    for h in run["metrics"]["history"]:  # the simulation's operator reads the sites' own lines
        assert h["site_local_losses"] and all(v > 0 for v in h["site_local_losses"].values())
    ckpt = load_checkpoint(run["out"])
    assert ckpt is not None and ckpt["server_state"]["server_optimizer"]["t"] == 2


# --- fake sites: known integer inputs, one dropout after key sharing, a capturing server ---

SITES, LR = 4, 0.5
DEAD = {1: {1}, 2: {1, 2}}  # round 2: only 2 survivors, below min_noisy_sites = 3
FAKE = [
    *TINY,
    *DDP,
    "privacy.min_noisy_sites=3",
    "train.optimizer=sgd",
    f"train.lr={LR}",
    "sim.rounds=2",
]


def fake_rows(dim: int, site: int) -> np.ndarray:
    """Site ``site``'s one clipped unit (norm 0.9 < C = 1)."""
    x = np.random.default_rng(7 + site).normal(size=(1, dim))
    return 0.9 * x / np.linalg.norm(x)


def make_ddp_fake_app(cfg: RootConfig) -> ClientApp:
    """Sites encode ``fake_rows`` without noise; sites in ``DEAD[round]`` die in the masked-input
    stage (after key sharing)."""
    pub = public_round(cfg, 1)
    assert pub.plan.ddp is not None
    params = pub.plan.ddp
    specs = [ddp_spec(cfg, 1)]
    aggregator = build_aggregator(cfg)
    allowed = allowed_fit_metrics()
    guard = make_guard_mod(lambda c: specs, lambda c: allowed, lambda c: "message")
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        site = int(context.node_config["partition-id"])
        reply = MetricRecord({"can-train": 1, "site": site})
        return Message(RecordDict({"budget": reply}), reply_to=msg)

    @app.train(mods=[*aggregator.client_mods(), guard])
    def train(msg: Message, context: Context) -> Message:
        site = int(context.node_config["partition-id"])
        rnd = int(msg.content.config_records[CONFIG]["round"])  # type: ignore[arg-type]
        if site in DEAD[rnd]:
            raise RuntimeError("site dies after key sharing")
        seed = int(msg.content.config_records[CONFIG]["ddp-seed"])  # type: ignore[arg-type]
        vec = codec.encode_units(fake_rows(pub.dim, site), params, seed, add_noise=False)
        return Message(train_reply([vec], ["ddp"], {}, "message"), reply_to=msg)

    return app


def test_dropout_after_key_sharing_and_masked_input_hides_the_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a server that records every masked vector it receives
    cfg = load_config([*FAKE, f"out={tmp_path}"])
    captured: list[tuple[int, np.ndarray]] = []
    unpack = secagg_driver._unpack

    def spy(msg: Message, timings: dict[str, float]) -> Any:
        payload = unpack(msg, timings)
        if payload is not None and payload.get("masked") is not None:
            captured.append((int(msg.metadata.group_id), np.array(payload["masked"])))
        return payload

    monkeypatch.setattr(secagg_driver, "_unpack", spy)
    torch.manual_seed(cfg.sim.seed)
    init = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))
    # Execute
    run_simulation(
        server_app=make_server_app(cfg),
        client_app=make_ddp_fake_app(cfg),
        num_supernodes=SITES,
        backend_config={"client_resources": {"num_cpus": 1.0, "num_gpus": 0.0}},
    )
    # Assert: the round completed without the dead site
    ckpt = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    h = ckpt["history"][0]
    assert h["completed"] == [0, 2, 3] and h["dropped"] == [1] and h["skipped"] is None
    # round 2: two survivors < min_noisy_sites, so the sum is never unmasked (model unchanged)
    h2 = ckpt["history"][1]
    assert h2["completed"] == [] and h2["skipped"] is not None and not h2["ddp"]
    # the first SGD step is -lr · Σ survivors' units / (B · survivors), within the rounding bound
    pub = public_round(cfg, 1)
    total = sum(fake_rows(pub.dim, s)[0] for s in (0, 2, 3))
    want = -LR * total / (cfg.train.batch_size * 3)
    got = np.concatenate(
        [
            (np.asarray(c, np.float64) - i).ravel()
            for c, i, spec in zip(
                ckpt["arrays"],
                init,
                fa.array_specs(build_model(cfg.encoder, 1), False),
                strict=True,
            )
            if any(spec.name == name for name, _ in pub.layout)
        ]
    )
    bound = LR * codec.rounding_error_bound(pub.plan.ddp, 3) / (cfg.train.batch_size * 3)
    assert np.linalg.norm(got - want) <= bound + 1e-5
    assert np.linalg.norm(want) > 10 * bound  # the check can fail
    # the captured masked inputs are not the sites' inputs: an unmasked coordinate would lie
    # within ±1 of the rotated, scaled unit (conditional rounding moves it by less than 1)
    p = pub.plan.ddp
    run_id = json.loads((tmp_path / "metrics.json").read_text())["run_id"]
    assert sorted(r for r, _ in captured) == [1, 1, 1, 2, 2]
    for rnd, masked in captured:
        seed = int(pub.config(run_id, rnd)["ddp-seed"])
        value = codec.from_words(np.asarray(masked[: p.padded], np.uint64), p.bits)
        for site in (0, 2, 3):
            ref = np.rint(rotate(fake_rows(pub.dim, site) * p.scale, seed)[0]).astype(np.int64)
            diff = codec.from_words(codec.to_words(value - ref, p.bits), p.bits)
            assert np.mean(np.abs(diff) <= 1) < 0.01
