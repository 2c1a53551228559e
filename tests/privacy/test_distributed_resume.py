"""Distributed mode's server optimizer is checkpointed: a resumed run continues Adam exactly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_fed.config import ConfigError, load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators.secagg_distributed import DistributedSecAggAggregator
from ssl_fed.fed.tracking import RunTracker, load_checkpoint
from ssl_fed.models import build_model
from ssl_fed.train.server_opt import FlatServerOptimizer

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]
DDP = [*TINY, "privacy.noise=distributed", "data.public_size=64", "train.batch_size=16"]


def gradients(n: int, dim: int) -> list[np.ndarray]:
    """Noisy-sum-like gradients whose scale changes over rounds (Adam's moments matter)."""
    rng = np.random.default_rng(0)
    return [rng.normal(size=dim) * (1 + k) for k in range(n)]


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_resumed_optimizer_continues_exactly_like_an_uninterrupted_one(kind, tmp_path: Path):
    # Prepare: 6 rounds of summed gradients
    grads = gradients(6, 50)
    straight = FlatServerOptimizer(kind, 0.01, 50)
    expected = [straight.step(g, 32.0) for g in grads]

    # Execute: 3 rounds, checkpoint through torch.save/torch.load (as the run does), 3 more
    first = FlatServerOptimizer(kind, 0.01, 50)
    got = [first.step(g, 32.0) for g in grads[:3]]
    torch.save({"server_state": first.state_dict()}, tmp_path / "last.pt")
    resumed = FlatServerOptimizer(kind, 0.01, 50)
    resumed.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=False)["server_state"])
    got += [resumed.step(g, 32.0) for g in grads[3:]]
    restarted = FlatServerOptimizer(kind, 0.01, 50)
    restarted_step = restarted.step(grads[3], 32.0)

    # Assert: bit-identical to the uninterrupted run; restarting the moments would not be
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
    assert not np.allclose(restarted_step, expected[3])


def test_a_checkpointed_state_of_another_optimizer_is_refused_naming_the_setting():
    state = FlatServerOptimizer("adam", 0.01, 5).state_dict()
    with pytest.raises(ValueError, match=r"train\.optimizer and train\.lr"):
        FlatServerOptimizer("sgd", 0.01, 5).load_state_dict(state)
    with pytest.raises(ValueError, match=r"train\.optimizer and train\.lr"):
        FlatServerOptimizer("adam", 0.02, 5).load_state_dict(state)
    with pytest.raises(ValueError, match=r"privacy\.trainable"):
        FlatServerOptimizer("adam", 0.01, 6).load_state_dict(state)


def fake_rounds(cfg):
    """The two things the aggregator reads from the round state to derive its public constants."""
    specs = fa.array_specs(build_model(cfg.encoder, 1), cfg.aggregation.share_heads)
    return SimpleNamespace(specs=specs, run_id="run")


@pytest.fixture(autouse=True)
def small_public_round(monkeypatch):
    """Only the size of the trained vector matters here; skip the σ calibration (seconds)."""
    monkeypatch.setattr(
        "ssl_fed.train.fedsgd_public.public_round", lambda cfg, channels: SimpleNamespace(dim=40)
    )


def test_the_aggregator_state_round_trips_and_the_next_step_is_the_uninterrupted_one():
    # Prepare: an aggregator that took two server steps
    cfg = load_config(DDP)
    before = DistributedSecAggAggregator(cfg)
    dim = before._public(fake_rounds(cfg)).dim
    grads = gradients(3, dim)
    assert before.optimizer is not None
    for g in grads[:2]:
        before.optimizer.step(g, 16.0)
    state = before.server_state()

    # Execute: a new aggregator (the resumed server) restores it
    after = DistributedSecAggAggregator(cfg)
    after.restore_server_state(state)
    assert after.server_state() is state  # kept until the model size is known
    after._public(fake_rounds(cfg))
    assert after.optimizer is not None

    # Assert
    assert after.optimizer.t == 2
    assert np.array_equal(
        after.optimizer.step(grads[2], 16.0), before.optimizer.step(grads[2], 16.0)
    )


def test_resuming_with_another_server_optimizer_is_a_config_error():
    cfg = load_config(DDP)
    agg = DistributedSecAggAggregator(cfg)
    agg._public(fake_rounds(cfg))
    state = agg.server_state()
    other = DistributedSecAggAggregator(load_config([*DDP, "train.optimizer=sgd"]))
    with pytest.raises(ConfigError, match=r"train\.optimizer=sgd"):
        other.restore_server_state(state)


def test_the_run_checkpoint_holds_the_server_state_and_a_resumed_aggregator_continues(
    tmp_path: Path,
):
    # Prepare: a deployed-style tracker (no data read) whose live aggregator took one step
    cfg = load_config([*DDP, "data.channels=1", f"out={tmp_path}"])
    tracker = RunTracker(cfg, "run", [])
    live = DistributedSecAggAggregator(cfg)
    live._public(fake_rounds(cfg))
    assert live.optimizer is not None
    live.optimizer.step(np.arange(40.0), 2.0)
    tracker.aggregator = live

    # Execute: checkpoint as a round end does, then restore as run_server does on resume
    tracker.save_checkpoint(1, [np.zeros(3, np.float32)])
    tracker.close()
    ckpt = load_checkpoint(tmp_path)
    assert ckpt is not None
    resumed = DistributedSecAggAggregator(cfg)
    resumed.restore_server_state(ckpt["server_state"])
    resumed._public(fake_rounds(cfg))

    # Assert
    assert resumed.optimizer is not None and resumed.optimizer.t == 1
    assert np.array_equal(resumed.optimizer.m, live.optimizer.m)
    assert np.array_equal(resumed.optimizer.v, live.optimizer.v)


def test_a_checkpoint_without_server_state_resumes_afresh_with_one_warning(caplog):
    # Prepare: a checkpoint file written before the server optimizer state was saved
    cfg = load_config(DDP)
    old = Path("runs/old/checkpoints/last.pt")
    agg, new = DistributedSecAggAggregator(cfg), DistributedSecAggAggregator(cfg)

    # Execute
    with caplog.at_level("WARNING"):
        agg.restore_server_state(None, checkpoint=old)
        warned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        new.restore_server_state(None)  # no checkpoint at all: a new run, nothing to say
    agg._public(fake_rounds(cfg))

    # Assert: one line naming the file, the fresh state and the unaffected accounting
    assert len(warned) == 1
    assert str(old) in warned[0]
    assert "starts train.optimizer=adam afresh (zero moments, step 0)" in warned[0]
    assert "privacy accounting is unaffected" in warned[0]
    assert caplog.records == []
    assert agg.optimizer is not None and agg.optimizer.t == 0


class _Restored(Exception):
    """Stops run_server right after it handed the aggregator its checkpoint."""


class _RecordingAggregator:
    def restore_server_state(self, state, *, checkpoint=None):
        raise _Restored(state, checkpoint)


@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_run_server_tells_the_aggregator_which_checkpoint_had_no_state(
    tmp_path: Path, monkeypatch, with_checkpoint
):
    # Prepare: an out= with an old-style checkpoint (no server_state key), or with none
    from ssl_fed.fed import serverapp

    cfg = load_config([*DDP, f"out={tmp_path}", f"resume={str(with_checkpoint).lower()}"])
    ckpt = tmp_path / "checkpoints" / "last.pt"
    if with_checkpoint:
        ckpt.parent.mkdir()
        torch.save({"run_id": "r", "round": 1, "history": [], "arrays": []}, ckpt)
    monkeypatch.setattr(serverapp, "build_aggregator", lambda cfg: _RecordingAggregator())

    # Execute
    with pytest.raises(_Restored) as got:
        serverapp.run_server(None, None, cfg)

    # Assert: no state either way; the file is named only when it exists
    assert got.value.args == (None, ckpt if with_checkpoint else None)
