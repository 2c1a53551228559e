"""DP-FedSGD pieces: clipped unit rows, batching across sites, the server step, a full round."""

import numpy as np
import pytest
import torch

from ssl_fed.config import TaskConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd import clipped_rows, local_noisy_sum, sample_units, trainable_dim
from ssl_fed.train.fedsgd_federation import (
    Federation,
    NoisePlan,
    plan_noise,
    round_seed,
    secure_noisy_sum,
)
from ssl_fed.train.randomness import UnitStreams, unit_ids
from ssl_fed.train.server_opt import ServerOptimizer
from tests.helpers import images, tiny_task


def _sites(n: int = 3) -> list[ImageDataset]:
    return [ImageDataset(images(40, seed=s), None, "test") for s in range(n)]


def _rows_per_site(task, sites, plan):
    out = []
    for s, data in enumerate(sites):
        streams = UnitStreams(bytes([s]) * 32, unit_ids(data.images))
        out.append(sample_units(task, data, plan, streams, step=0, sample_rate=0.3))
    return out


def test_rows_are_clipped_and_batching_sites_changes_nothing():
    # Prepare: joint task, group units; two sites' samples
    task = tiny_task("joint").float()
    plan = plan_units(task, TaskConfig(name="joint", temperature=0.5), 12)
    (u1, m1), (u2, m2) = _rows_per_site(task, _sites(2), plan)

    # Execute: one call per site vs one call for both (padded to a common width)
    alone = np.concatenate([clipped_rows(task, u1, m1, 0.5), clipped_rows(task, u2, m2, 0.5)])
    w = max(m1.shape[1], m2.shape[1])

    def pad(t):
        z = torch.zeros(t.shape[0], w - t.shape[1], *t.shape[2:], dtype=t.dtype)
        return torch.cat([t, z], 1)

    both = clipped_rows(task, torch.cat([pad(u1), pad(u2)]), torch.cat([pad(m1), pad(m2)]), 0.5)

    # Assert
    assert both.shape == (u1.shape[0] + u2.shape[0], trainable_dim(task))
    assert np.all(np.linalg.norm(both, axis=1) <= 0.5 + 1e-9)
    assert np.allclose(both, alone, atol=1e-6)  # float32 model


def test_server_step_applies_the_sum_over_the_expected_batch():
    task = tiny_task("rotation").float()
    before = torch.cat([p.detach().flatten() for _, p in task.trainable_named_parameters()])
    opt = ServerOptimizer(task, "sgd", lr=0.1, expected_batch=4.0)
    summed = np.linspace(-1, 1, before.numel())
    opt.step(summed)
    after = torch.cat([p.detach().flatten() for _, p in task.trainable_named_parameters()])
    expected = before - 0.1 * torch.from_numpy(summed).float() / 4.0
    assert torch.allclose(after, expected, atol=1e-7)


def test_local_noise_has_the_full_per_site_std():
    noisy = local_noisy_sum(np.zeros((0, 50_000)), noise_multiplier=1.5, sensitivity=2.0, clip=0.5)
    assert noisy.std() == pytest.approx(1.5, rel=0.02)


@pytest.mark.slow
def test_distributed_plan_shares_noise_and_reaches_the_target_epsilon():
    kw = dict(
        target_epsilon=3.0,
        delta=1e-5,
        sample_rate=0.05,
        rounds=20,
        sensitivity=2.0,
        clip=1.0,
        dim=5000,
        bits=32,
        num_sites=10,
        min_noisy_sites=10,
        max_units=2000,
    )
    local, dist = plan_noise("local", **kw), plan_noise("distributed", **kw)
    assert local.epsilon <= 3.0 and dist.epsilon <= 3.0
    assert dist.epsilon == pytest.approx(3.0, rel=0.01)
    ratio = local.aggregate_std(10) / dist.aggregate_std(10)
    assert 0.85 * np.sqrt(10) < ratio < np.sqrt(10)  # √K, less the Zhu-Wang bound's slack


@pytest.mark.slow
def test_distributed_round_through_secagg_decodes_the_sum_and_moves_the_model():
    # Prepare: 3 sites, essentially no noise, the real codec + in-process SecAgg+
    task = tiny_task("rotation").float()
    plan = plan_units(task, TaskConfig(name="rotation"), 12)
    sites = _sites(3)
    noise = plan_noise(
        "distributed",
        target_epsilon=1e6,
        delta=1e-5,
        sample_rate=0.3,
        rounds=1,
        sensitivity=1.0,
        clip=1.0,
        dim=trainable_dim(task),
        bits=40,
        num_sites=3,
        min_noisy_sites=3,
        max_units=120,
    )
    opt = ServerOptimizer(task, "sgd", lr=0.5, expected_batch=36.0)
    fed = Federation(task, sites, plan, 0.3, noise, opt)
    rows = fed.site_rows(1)

    # Execute
    total, _res = secure_noisy_sum(rows, noise, round_seed("t", 1))
    before = [p.detach().clone() for _, p in task.trainable_named_parameters()]
    stats = fed.run_round(2)

    # Assert: decoded sum ≈ exact sum (noise std tiny at ε = 1e6); the round moved the model
    exact = np.sum([r.sum(axis=0) for r in rows.values()], axis=0)
    assert total is not None
    assert np.linalg.norm(total - exact) < 1e-2 * np.linalg.norm(exact) + 5 * noise.aggregate_std(
        3
    ) * np.sqrt(exact.size)
    assert stats["skipped"] == "" and stats["units"] > 0
    after = [p.detach() for _, p in task.trainable_named_parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert isinstance(noise, NoisePlan) and noise.ddp is not None
