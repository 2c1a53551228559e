"""metrics.json in distributed mode: the codec's own rounding bound, not the fixed-point one."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ssl_fed.config import load_config
from ssl_fed.fed.aggregators import build_aggregator
from ssl_fed.fed.aggregators.secagg_distributed import DistributedSecAggAggregator
from ssl_fed.fed.tracking import RunTracker
from ssl_fed.privacy.distributed import codec
from ssl_fed.privacy.distributed.params import DDPParams, choose_scale

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]
DDP = [*TINY, "privacy.noise=distributed", "data.public_size=64", "train.batch_size=16"]


def params(bits: int) -> DDPParams:
    return choose_scale(
        dim=300, bits=bits, clip=1.0, sensitivity_factor=1, noise_multiplier=1.0,
        min_noisy_sites=3, max_units=3 * 40, num_sites=3,
    )  # fmt: skip


def aggregator_with(p: DDPParams, extra: list[str] | None = None) -> DistributedSecAggAggregator:
    """The live aggregator after its first round: the public constants are known."""
    agg = DistributedSecAggAggregator(load_config([*DDP, *(extra or [])]))
    agg.public = SimpleNamespace(plan=SimpleNamespace(ddp=p))  # type: ignore[assignment]
    return agg


def test_the_decoded_mean_is_within_the_reported_bound_at_zero_noise():
    # Prepare: 40 clipped units summed without noise; the server's mean over U = 40 units
    p = params(20)
    bound = aggregator_with(p).quantization_bound()
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(40, 300))
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1.0)

    # Execute
    words = codec.to_words(codec.encode_units(rows, p, seed=5, add_noise=False), p.bits)
    mean = codec.decode_sum(words, p, seed=5) / 40

    # Assert: γ √d' (per value), and the exact mean is within it; coarser bits give a larger one
    assert bound == p.gamma * math.sqrt(p.padded)
    assert np.max(np.abs(mean - rows.mean(axis=0))) <= bound
    assert aggregator_with(params(14)).quantization_bound() > bound


def test_metrics_json_reports_the_distributed_codec_bound(tmp_path: Path):
    # Prepare: a deployed-style tracker whose live aggregator ran a round
    tracker = RunTracker(load_config([*DDP, "data.channels=1", f"out={tmp_path}"]), "run", [])
    fixed_point = build_aggregator(load_config([*TINY, "data.channels=1"])).quantization_bound()
    tracker.aggregator = aggregator_with(params(20))

    # Execute
    metrics = tracker.write_metrics()
    tracker.close()

    # Assert
    assert metrics["quantization_bound"] == params(20).gamma * math.sqrt(params(20).padded)
    assert metrics["quantization_bound"] != fixed_point
