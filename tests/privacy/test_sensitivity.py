"""Sensitivity by removing (or adding) one image and measuring the change of the clipped sum.

The first tests run the real training path (``train_local``, with its Poisson sampling, views,
multiplicity and group ids) on neighbouring datasets with the same secret run key and compare the
released clipped sums step by step (:mod:`tests.privacy.sensitivity_audit`). The later ones check
the DP step alone on hand-built batches.
"""

import copy
from dataclasses import replace

import pytest
import torch
from torch.func import functional_call, grad, vmap

from ssl_fed.privacy.dpsgd import DPSGDStep
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.tasks import TASKS
from ssl_fed.tasks.contrastive import nt_xent_terms
from ssl_fed.tasks.units import gather_units, plan_units
from tests.helpers import images, tiny_task, views_for
from tests.privacy.sensitivity_audit import audit_config, released_sums, worst_change

C = 1e-4
"""Small enough that every unit of the tiny model is clipped, so one unit moves the sum by C."""


def declared_sensitivity(name: str) -> float:
    """The sensitivity (in C) the task's unit plan declares: what the accountant is told."""
    task = tiny_task(name)
    plan = plan_units(task, replace(task.cfg, group_size=2), 16)
    assert plan.sensitivity is not None
    return plan.sensitivity


CASES = [
    (name, declared_sensitivity(name), batch, steps)
    for name in sorted(TASKS)
    for batch, steps in ((16, 1), (4, 3))
]
"""(task, declared sensitivity in C, batch, steps) for every registered task (a new task is
audited the moment it registers): over public size 12, batch 16 is q = 1, 4 is q = 1/3."""


def neighbour_changes(monkeypatch, tmp_path, task, batch, removed, keys, method="vmap"):
    """Worst per-step ‖ΔS‖ over keys, for D minus each of ``removed`` and D plus one image."""
    cfg = audit_config(task, batch, public_size=12, c=C, multiplicity=2, method=method)
    base, extra = images(12, seed=1), images(1, seed=2)
    changes = []
    for k, key in enumerate(keys):
        full = released_sums(monkeypatch, tmp_path / f"{k}-full", cfg, base, key)
        for j in removed:
            rest = torch.cat([base[:j], base[j + 1 :]])
            fewer = released_sums(monkeypatch, tmp_path / f"{k}-minus{j}", cfg, rest, key)
            changes.append(worst_change(full, fewer))
        more = released_sums(
            monkeypatch, tmp_path / f"{k}-plus", cfg, torch.cat([base[:5], extra, base[5:]]), key
        )
        changes.append(worst_change(full, more))
    return full, changes


@pytest.mark.slow
@pytest.mark.parametrize(("task", "bound", "batch", "steps"), CASES)
def test_one_image_moves_each_released_sum_of_train_local_by_at_most_its_sensitivity(
    monkeypatch, tmp_path, task, bound, batch, steps
):
    # Prepare / Execute: D, D minus images 0 and 7, D plus one image; multiplicity 2
    full, changes = neighbour_changes(monkeypatch, tmp_path, task, batch, [0, 7], [b"k" * 32])

    # Assert: the public step count, and every step within the stated sensitivity
    assert len(full) == steps
    assert max(changes) <= bound * C * (1 + 1e-3)


def test_at_q_1_removing_a_rotation_image_moves_the_sum_by_exactly_its_clipped_gradient(
    monkeypatch, tmp_path
):
    # Prepare / Execute: at q = 1 every image is in every step, and every unit is clipped to C
    _, changes = neighbour_changes(monkeypatch, tmp_path, "rotation", 16, [3], [b"q" * 32])

    # Assert: the audit sees the removed image (C), and nothing else moved
    assert all(c == pytest.approx(C, rel=1e-3) for c in changes)


@pytest.mark.slow
@pytest.mark.parametrize(("task", "bound", "batch", "steps"), CASES)
def test_the_sensitivity_holds_over_many_removed_images_and_keys(
    monkeypatch, tmp_path, task, bound, batch, steps
):
    keys = [bytes([k]) * 32 for k in range(3)]
    _, changes = neighbour_changes(monkeypatch, tmp_path, task, batch, [0, 4, 8, 11], keys)
    assert max(changes) <= bound * C * (1 + 1e-3)


def clipped_sum(task, views, index, mask, c):
    """Run the real private step (σ=0, lr=1, expected batch 1) and return minus the update."""
    work = copy.deepcopy(task)
    before = torch.cat([p.detach().flatten() for _, p in work.trainable_named_parameters()])
    opt = torch.optim.SGD([p for _, p in work.trainable_named_parameters()], lr=1.0)
    DPSGDStep(
        work, opt, noise_multiplier=0.0, max_grad_norm=c, sensitivity=2.0, expected_batch_size=1
    )(gather_units(views, index), mask)
    after = torch.cat([p.detach().flatten() for _, p in work.trainable_named_parameters()])
    return before - after


def small_c(task, views, index, mask):
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}
    grads, _ = per_unit_gradients(task, params, gather_units(views, index), mask)
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)
    return float(norms.min()) / 2


def test_removing_one_image_moves_the_rotation_sum_by_at_most_c():
    # Prepare: 6 images, one unit each
    task = tiny_task("rotation")
    views = views_for(task, 6)
    full_index = torch.arange(6).unsqueeze(1)
    ones = torch.ones(6, 1, dtype=torch.float64)
    c = small_c(task, views, full_index, ones)
    full = clipped_sum(task, views, full_index, ones, c)

    for k in range(6):
        # Execute: the same batch without image k
        keep = torch.tensor([i for i in range(6) if i != k]).unsqueeze(1)
        reduced = clipped_sum(task, views, keep, torch.ones(5, 1, dtype=torch.float64), c)

        # Assert
        assert float((full - reduced).norm()) <= c * (1 + 1e-6)


def test_removing_one_image_moves_the_group_contrastive_sum_by_at_most_2c():
    # Prepare: two groups; every other image keeps its group when one is removed
    task = tiny_task("joint")
    views = views_for(task, 6)
    index = torch.tensor([[0, 2, 4], [1, 3, 5]])
    mask = torch.ones(2, 3, dtype=torch.float64)
    c = small_c(task, views, index, mask)
    full = clipped_sum(task, views, index, mask, c)

    for k in range(6):
        # Execute
        rows = [[i for i in row if i != k] for row in index.tolist()]
        width = max(len(r) for r in rows)
        idx = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        msk = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in rows]).double()
        delta = float((full - clipped_sum(task, views, idx, msk, c)).norm())

        # Assert
        assert delta <= 2 * c * (1 + 1e-6)


def naive_row_clipped_sum(task, views, c):
    """What wrapping full-batch NT-Xent in per-example clipping would release (encoder only)."""
    enc = task.model.encoder
    params = {n: p.detach() for n, p in enc.named_parameters()}
    n = views.shape[0]
    stacked = {k: v.unsqueeze(0).expand(n, *v.shape).clone() for k, v in params.items()}

    def loss(rows):
        h = vmap(lambda p, v: functional_call(enc, p, (v,)))(rows, views)
        return nt_xent_terms(task, h.unsqueeze(0), torch.ones(1, n, dtype=views.dtype)).sum()

    g = grad(loss)(stacked)
    norms = torch.stack([x.flatten(1).norm(dim=1) for x in g.values()], 1).norm(dim=1)
    f = (c / (norms + 1e-12)).clamp(max=1.0)
    return torch.cat(
        [(f.view(-1, *[1] * (x.ndim - 1)) * x).sum(0).detach().flatten() for x in g.values()]
    )


def test_naive_full_batch_nt_xent_exceeds_c_on_near_duplicates():
    # Prepare: 8 images, 6 of them near-duplicates of image 0 (hard negatives)
    task = tiny_task("contrastive", negatives="batch", seed=1)
    torch.manual_seed(3)
    base = torch.rand(1, 1, 8, 8).double()
    imgs = torch.cat(
        [base + 0.01 * torch.randn(7, 1, 8, 8).double(), torch.rand(1, 1, 8, 8).double()]
    ).clamp(0, 1)
    views = torch.stack([imgs, imgs.flip(-1)], dim=1)
    c = 1e-3

    # Execute: the largest change of the per-row-clipped sum when one image is removed
    full = naive_row_clipped_sum(task, views, c)
    worst = max(
        float(
            (full - naive_row_clipped_sum(task, views[[i for i in range(8) if i != k]], c)).norm()
        )
        for k in range(8)
    )

    # Assert: the accountant would assume C; the true change is larger
    assert worst > 1.5 * c


@pytest.mark.slow
@pytest.mark.parametrize("batch", [16, 4])
def test_the_sensitivity_holds_with_the_hook_based_per_unit_gradients(monkeypatch, tmp_path, batch):
    keys = [b"h" * 32]
    _, changes = neighbour_changes(monkeypatch, tmp_path, "joint", batch, [2, 9], keys, "hooks")
    assert max(changes) <= 2.0 * C * (1 + 1e-3)
