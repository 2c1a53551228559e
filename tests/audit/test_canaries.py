"""White-box canaries are real units of the DP step; the scores are the stated ratios."""

import math

import pytest
import torch

from ssl_fed.audit.canaries import (
    group_pair_scores,
    likelihood_ratio_scores,
    make_dirac_canaries,
    rotation_loss_scores,
)
from ssl_fed.privacy.dpsgd import DPSGDStep
from tests.helpers import images, tiny_task


def shapes_of(task):
    return {n: p.shape for n, p in task.trainable_named_parameters()}


def test_each_canary_row_is_one_signed_coordinate_of_norm_scale():
    # Prepare
    task = tiny_task("rotation")
    gen = torch.Generator().manual_seed(0)
    canaries = make_dirac_canaries(shapes_of(task), 50, scale=2.0, generator=gen)

    # Execute
    rows = canaries.rows(shapes_of(task), torch.arange(50))
    flat = torch.cat([r.reshape(50, -1) for r in rows.values()], dim=1)

    # Assert: one non-zero per row, ±2; 50 distinct coordinates; read() recovers the signs
    assert torch.equal((flat != 0).sum(dim=1), torch.ones(50, dtype=torch.long))
    assert torch.equal(flat.abs().sum(dim=1), torch.full((50,), 2.0))
    assert len(set(torch.nonzero(flat)[:, 1].tolist())) == 50
    one = {n: r[7] for n, r in rows.items()}
    assert canaries.read(one)[7] == 2.0


@pytest.mark.parametrize("method", ["vmap", "hooks", "ghost"])
def test_a_canary_unit_is_clipped_summed_and_noised_like_any_unit(method):
    # Prepare: an empty batch of images, σ = 0, C = 0.5, expected batch 4, canaries 3 and 5
    task = tiny_task("rotation")
    shapes = shapes_of(task)
    gen = torch.Generator().manual_seed(1)
    canaries = make_dirac_canaries(shapes, 8, scale=2.0, generator=gen)
    optim = torch.optim.SGD([p for _, p in task.trainable_named_parameters()], lr=0.0)
    step = DPSGDStep(
        task,
        optim,
        noise_multiplier=0.0,
        max_grad_norm=0.5,
        sensitivity=1.0,
        expected_batch_size=4,
        method=method,
    )
    seen = {}
    step.optimizer.step_hook = lambda opt: seen.update(
        {n: p.grad.clone() for n, p in step.named.items()}
    )
    step.extra_units = lambda: canaries.rows(shapes, torch.tensor([3, 5]))

    # Execute
    step(torch.zeros(0, 1, 4, 1, 8, 8, dtype=torch.float64), torch.zeros(0, 1))

    # Assert: each canary clipped from 2 to C = 0.5, divided by the expected batch size 4
    read = canaries.read(seen)
    expected = torch.zeros(8, dtype=torch.float64)
    expected[[3, 5]] = 0.5 / 4
    assert torch.allclose(read, expected)


def test_likelihood_ratio_by_hand():
    # Prepare: one step, q = 1/2, s = 1, observations 1.5 and -0.5
    observed = torch.tensor([[1.5, -0.5]], dtype=torch.float64)

    # Execute
    scores = likelihood_ratio_scores(observed, sample_rate=0.5, noise_std=1.0)

    # Assert: log(1/2 + 1/2·e^{x - 1/2})
    assert scores[0].item() == pytest.approx(math.log(0.5 + 0.5 * math.e))
    assert scores[1].item() == pytest.approx(math.log(0.5 + 0.5 * math.exp(-1)))


def test_without_declared_noise_the_score_is_the_plain_sum():
    observed = torch.tensor([[1.0, 0.0], [1.0, 0.5]])
    assert torch.equal(
        likelihood_ratio_scores(observed, sample_rate=0.1, noise_std=0.0), torch.tensor([2.0, 0.5])
    )


def test_black_box_scores_are_minus_the_rotation_loss():
    # Prepare
    task = tiny_task("rotation")
    task.eval()
    batch = images(3).double()

    # Execute
    scores = rotation_loss_scores(task, batch)

    # Assert: one image at a time through the rotation head, by the definition of RotNet's loss
    from ssl_fed.data.views import rotate_four

    for i in range(3):
        logits = task.model.heads["rotation"](task.model.encoder(rotate_four(batch[i : i + 1])[0]))
        ce = torch.nn.functional.cross_entropy(logits, torch.arange(4))
        assert scores[i].item() == pytest.approx(-ce.item(), rel=1e-6)


def test_black_box_refuses_a_task_without_rotation_loss():
    with pytest.raises(ValueError, match="rotation"):
        rotation_loss_scores(tiny_task("contrastive"), images(2).double())


def test_group_pair_scores_by_hand():
    # Prepare: q = 1, declared std s = 2: y = x / 2 has std 1, and the per-step ratio is
    # (y - 1/2) / 1; steps x = 2, -1, 0.5 give 1/2 - 1 - 1/4 = -0.75
    observed = torch.tensor([[2.0], [-1.0], [0.5]], dtype=torch.float64)

    # Execute
    got = group_pair_scores(observed, sample_rate=1.0, noise_std=2.0)

    # Assert
    assert got.tolist() == pytest.approx([-0.75])
