"""The private step against the plain step, clipping bounds, noise, and refusals."""

import copy

import pytest
import torch
from torch import nn

from ssl_fed.privacy.dpsgd import DPSGDStep, PlainStep, PrivacyError, check_private_setup
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.tasks import TASKS
from ssl_fed.tasks.units import UnitPlan, gather_units
from tests.helpers import tiny_task, views_for


def sgd(task, lr=0.1):
    return torch.optim.SGD([p for _, p in task.trainable_named_parameters()], lr=lr)


def snapshot(task):
    return {n: p.detach().clone() for n, p in task.trainable_named_parameters()}


def units(task, n):
    views = views_for(task, n)
    index = torch.tensor([[0, 2], [1, 3], [4, 0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]], dtype=torch.float64)
    return gather_units(views, index), mask


@pytest.mark.parametrize("name", sorted(TASKS))
def test_private_step_without_clipping_or_noise_equals_plain_step(name):
    # Prepare: two identical tasks (every registered one), C effectively infinite, σ = 0
    plain_task = tiny_task(name)
    dp_task = copy.deepcopy(plain_task)
    views, mask = units(plain_task, 5)

    # Execute
    PlainStep(plain_task, sgd(plain_task), expected_batch_size=5)(views, mask)
    DPSGDStep(
        dp_task,
        sgd(dp_task),
        noise_multiplier=0.0,
        max_grad_norm=1e12,
        sensitivity=2.0,
        expected_batch_size=5,
    )(views, mask)

    # Assert
    for name, value in snapshot(plain_task).items():
        torch.testing.assert_close(snapshot(dp_task)[name], value, atol=1e-10, rtol=1e-8)


def test_clipped_units_never_exceed_max_grad_norm():
    # Prepare: SGD with lr 1 and expected batch 1, so the update is minus the clipped sum
    task = tiny_task("joint")
    views, mask = units(task, 5)
    params = {n: p.detach().clone() for n, p in task.trainable_named_parameters()}
    grads, _ = per_unit_gradients(task, params, views, mask)
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
    c = float(norms.min()) / 2
    before = snapshot(task)

    # Execute
    DPSGDStep(
        task,
        sgd(task, lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=c,
        sensitivity=2.0,
        expected_batch_size=1,
    )(views, mask)

    # Assert: the sum of the clipped rows equals Σ min(1, C/‖g‖)·g
    factors = (c / (norms + 1e-6)).clamp(max=1.0)
    for name, value in snapshot(task).items():
        expected = -(factors.view(-1, *[1] * (grads[name].ndim - 1)) * grads[name]).sum(0)
        torch.testing.assert_close(value - before[name], expected, atol=1e-9, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_one_units_clipped_update_has_norm_c_or_less(name):
    # Prepare: C between the units' gradient norms, so some are clipped and some are not
    task = tiny_task(name)
    views, mask = units(task, 5)
    params = {n: p.detach().clone() for n, p in task.trainable_named_parameters()}
    grads, _ = per_unit_gradients(task, params, views, mask)
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
    c = float(norms.median())

    for g in range(len(mask)):
        # Execute: one unit alone, σ = 0, lr 1, expected batch 1: the update is minus its row
        one = copy.deepcopy(task)
        before = snapshot(one)
        DPSGDStep(
            one,
            sgd(one, lr=1.0),
            noise_multiplier=0.0,
            max_grad_norm=c,
            sensitivity=2.0,
            expected_batch_size=1,
        )(views[g : g + 1], mask[g : g + 1])
        update = torch.cat([(v - before[n]).flatten() for n, v in snapshot(one).items()])

        # Assert: a clipped unit moves the parameters by exactly C, an unclipped one by ‖g‖
        expected = min(c, float(norms[g]))
        assert float(update.norm()) == pytest.approx(expected, rel=1e-5)
        assert float(update.norm()) <= c * (1 + 1e-9)


def test_empty_batch_takes_a_noise_only_step():
    # Prepare
    task = tiny_task("rotation")
    before = snapshot(task)
    views = torch.zeros(0, 1, 4, 1, 8, 8, dtype=torch.float64)

    # Execute
    DPSGDStep(
        task,
        sgd(task),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        sensitivity=1.0,
        expected_batch_size=4,
    )(views, torch.zeros(0, 1, dtype=torch.float64))

    # Assert: the step was taken (parameters moved by noise), not skipped
    assert any(not torch.equal(before[n], v) for n, v in snapshot(task).items())


def test_noise_std_is_sensitivity_times_sigma_times_c():
    # Prepare: an empty batch isolates the noise; sum-normalize with expected batch 1, lr 1
    task = tiny_task("contrastive")
    before = snapshot(task)
    views = torch.zeros(0, 1, 2, 1, 8, 8, dtype=torch.float64)

    # Execute
    DPSGDStep(
        task,
        sgd(task, lr=1.0),
        noise_multiplier=1.5,
        max_grad_norm=0.4,
        sensitivity=2.0,
        expected_batch_size=1,
    )(views, torch.zeros(0, 1, dtype=torch.float64))

    # Assert: the empirical std over all coordinates is 2 · 1.5 · 0.4 = 1.2
    noise = torch.cat([(v - before[n]).flatten() for n, v in snapshot(task).items()])
    assert noise.numel() > 1000
    assert abs(float(noise.std()) - 1.2) < 0.06


def test_batchnorm_model_is_refused():
    # Prepare
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))

    # Execute / Assert
    with pytest.raises(PrivacyError, match="BatchNorm"):
        check_private_setup(model, UnitPlan("image", 0, 1.0), delta=1e-5, n=1000)


def test_delta_not_below_one_over_n_is_refused():
    with pytest.raises(PrivacyError, match="1/n"):
        check_private_setup(nn.Linear(2, 2), UnitPlan("image", 0, 1.0), delta=1e-2, n=200)


def test_in_batch_negatives_are_refused_with_the_sensitivity_reason():
    with pytest.raises(PrivacyError, match="sensitivity"):
        check_private_setup(nn.Linear(2, 2), UnitPlan("batch", 1, None), delta=1e-5, n=1000)
