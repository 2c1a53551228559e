"""The public constants of a distributed round, the flat server optimizer, and the selection."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_fed.config import ConfigError, load_config
from ssl_fed.fed.aggregators import build_aggregator, names
from ssl_fed.fed.aggregators.secagg import SecAggAggregator
from ssl_fed.fed.aggregators.secagg_distributed import DistributedSecAggAggregator, scatter
from ssl_fed.fed.guard import GuardError, check_arrays
from ssl_fed.site.ddp import ddp_spec
from ssl_fed.train.fedsgd_public import (
    column_index,
    public_layout,
    public_task,
    sample_rate,
)
from ssl_fed.train.server_opt import FlatServerOptimizer

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]
DDP = [*TINY, "privacy.noise=distributed", "data.public_size=64", "train.batch_size=16"]


def test_distributed_noise_selects_the_secagg_variant_without_a_new_name():
    assert type(build_aggregator(load_config(DDP))) is DistributedSecAggAggregator
    assert type(build_aggregator(load_config(TINY))) is SecAggAggregator
    assert names() == ("flower-secaggplus", "plain", "secagg")


def test_sample_rate_is_batch_over_the_declared_size():
    assert sample_rate(load_config(DDP)) == pytest.approx(16 / 64)


def test_layout_columns_pick_exactly_the_federated_trained_parameters():
    # Prepare: only block3 and the rotation head trained; heads not shared
    cfg = load_config([*DDP, "privacy.trainable=[encoder.block3,rotation]"])
    task = public_task(cfg, 1)
    trained = list(task.trainable_named_parameters())
    # Execute
    layout = public_layout(task, share_heads=False)
    cols = column_index(task, layout)
    # Assert: every block3 coordinate, no head coordinate, in order
    assert [n for n, _ in layout] == [n[len("model.") :] for n, _ in trained if "heads" not in n]
    assert all(n.startswith("encoder.block3") for n, _ in layout)
    assert cols.size == sum(s for _, s in layout) and np.all(np.diff(cols) == 1)
    flat = torch.cat([p.detach().reshape(-1) for _, p in trained]).numpy()
    first = dict(task.trainable_named_parameters())[f"model.{layout[0][0]}"]
    assert np.array_equal(flat[cols][: first.numel()], first.detach().reshape(-1).numpy())


def test_scatter_puts_the_change_on_the_layout_and_zeros_elsewhere():
    rounds = SimpleNamespace(
        specs=[SimpleNamespace(name=n) for n in ("a", "b", "c")],
        arrays=[np.zeros((2, 2)), np.zeros(3), np.zeros(1)],
    )
    pub = SimpleNamespace(layout=(("c", 1), ("a", 4)))
    out = scatter(np.arange(5.0), pub, rounds)  # type: ignore[arg-type]
    assert out[2].tolist() == [0.0] and out[0].ravel().tolist() == [1, 2, 3, 4]
    assert not out[1].any()


def test_sgd_step_is_minus_lr_times_the_normalized_sum_and_adam_matches_torch():
    g = np.array([3.0, -6.0, 0.0])
    sgd = FlatServerOptimizer("sgd", 0.5, 3)
    assert np.allclose(sgd.step(g, 3.0), -0.5 * g / 3)
    assert np.allclose(sgd.step(g, 3.0), -0.5 * (0.9 * g / 3 + g / 3))
    adam = FlatServerOptimizer("adam", 0.1, 3)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    ref = torch.optim.Adam([w], lr=0.1)
    total = np.zeros(3)
    for k in range(3):
        w.grad = torch.from_numpy(g * (k + 1) / 2.0)
        ref.step()
        total += adam.step(g * (k + 1), 2.0)
    assert np.allclose(total, w.detach().numpy(), atol=1e-12)


def test_the_guard_accepts_only_the_one_int64_array():
    cfg = load_config(DDP)
    spec = ddp_spec(cfg, 1)
    ok = np.zeros(spec.shape, np.int64)
    check_arrays([ok], [spec])
    for bad in ([ok.astype(np.float32)], [ok[:-1]], [ok, ok]):
        with pytest.raises(GuardError):
            check_arrays(bad, [spec])


def test_distributed_without_a_declared_size_is_refused():
    with pytest.raises(ConfigError, match=r"data\.public_size"):
        load_config([*TINY, "privacy.noise=distributed"])
