"""Per-unit gradients against batch-size-1 references (DESIGN §4.7)."""

import pytest
import torch

from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.privacy.unit_hooks import per_unit_gradients_hooks
from ssl_fed.tasks import TASKS
from ssl_fed.tasks.units import gather_units
from tests.helpers import tiny_task, views_for


def reference_gradient(task, unit_views, unit_mask):
    """Plain autograd on one unit alone, padding removed: obviously correct, but slow."""
    real = unit_mask.bool()
    task.zero_grad(set_to_none=True)
    terms = task(unit_views[real].unsqueeze(0), torch.ones(1, int(real.sum()), dtype=torch.float64))
    task.combine(terms).sum().backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in task.trainable_named_parameters()
    }


@pytest.mark.parametrize("method", ["vmap", "hooks"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_per_unit_gradients_match_single_unit_reference(name, method):
    # Prepare: 7 images, every registered task; one image per unit for a task that does not
    # couple images, random padded groups for one that does
    task = tiny_task(name)
    views = views_for(task, 7)
    if not TASKS[name].couples_examples:
        index, mask = torch.arange(7).unsqueeze(1), torch.ones(7, 1, dtype=torch.float64)
    else:
        index = torch.tensor([[0, 3, 5], [1, 0, 0], [2, 4, 6]])
        mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 1]], dtype=torch.float64)
    unit_views = gather_units(views, index)
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}

    # Execute
    if method == "vmap":
        grads, _ = per_unit_gradients(task, params, unit_views, mask)
    else:
        grads, _ = per_unit_gradients_hooks(task, unit_views, mask)

    # Assert: every unit's row equals autograd on that unit alone (all views inside the unit)
    for g in range(index.shape[0]):
        ref = reference_gradient(task, unit_views[g], mask[g])
        for pname, value in ref.items():
            torch.testing.assert_close(grads[pname][g], value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_all_views_of_an_image_share_one_gradient_row(name):
    # Prepare
    task = tiny_task(name)
    views = views_for(task, 5)
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}

    # Execute
    grads, _ = per_unit_gradients(
        task, params, gather_units(views, torch.arange(5).unsqueeze(1)), torch.ones(5, 1).double()
    )

    # Assert: 5 images with V views each give 5 rows, not 5V
    assert all(g.shape[0] == 5 for g in grads.values())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_padded_slots_do_not_change_a_group_gradient(name):
    # Prepare: the same group of 2 images, once unpadded and once padded to 4 slots
    task = tiny_task(name)
    views = views_for(task, 2)
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}
    tight = gather_units(views, torch.tensor([[0, 1]]))
    padded = gather_units(views, torch.tensor([[0, 1, 0, 0]]))

    # Execute
    g_tight, _ = per_unit_gradients(task, params, tight, torch.ones(1, 2).double())
    g_pad, _ = per_unit_gradients(task, params, padded, torch.tensor([[1.0, 1, 0, 0]]).double())

    # Assert
    for name in g_tight:
        torch.testing.assert_close(g_tight[name], g_pad[name], atol=1e-10, rtol=1e-8)
