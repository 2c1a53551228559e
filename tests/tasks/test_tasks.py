"""Pretext losses against hand-computed references, and the task registry."""

import math

import pytest
import torch
from torch.nn import functional as F

from ssl_fed.config import AugmentConfig, TaskConfig
from ssl_fed.tasks import build_task, form_units, plan_units
from ssl_fed.tasks.contrastive import nt_xent_terms
from tests.helpers import tiny_task, views_for


def manual_nt_xent(z1, z2, tau):
    """SimCLR's symmetric NT-Xent, one anchor at a time (the paper's definition)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        sims = [float(z[a] @ z[b]) / tau for b in range(2 * n) if b != a]
        total += -float(z[a] @ z[pos]) / tau + math.log(sum(math.exp(s) for s in sims))
    return total / 2


def test_nt_xent_equals_the_paper_definition():
    # Prepare: a projection head set to the identity so embeddings are what we pass in
    task = tiny_task("contrastive")
    proj = task.model.heads["projection"]
    task.model.heads["projection"] = torch.nn.Identity()
    h = torch.randn(1, 5, 2, 8, dtype=torch.float64)

    # Execute
    loss = nt_xent_terms(task, h, torch.ones(1, 5, dtype=torch.float64))

    # Assert
    assert float(loss) == pytest.approx(manual_nt_xent(h[0, :, 0], h[0, :, 1], 0.5), rel=1e-9)
    task.model.heads["projection"] = proj


def test_a_group_of_one_image_has_zero_contrastive_loss():
    task = tiny_task("contrastive")
    views = views_for(task, 1).unsqueeze(0)
    assert float(task(views, torch.ones(1, 1).double())["contrastive"]) == pytest.approx(0.0)


def test_rotation_loss_is_the_mean_ce_over_four_rotations():
    # Prepare
    task = tiny_task("rotation")
    views = views_for(task, 1)
    logits = task.model.heads["rotation"](task.model.encoder(views[0]))

    # Execute
    loss = task(views.unsqueeze(1), torch.ones(1, 1).double())["rotation"]

    # Assert
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits, torch.arange(4))))


def test_views_have_the_documented_layout():
    assert views_for(tiny_task("rotation"), 3).shape == (3, 4, 1, 8, 8)
    assert views_for(tiny_task("contrastive"), 3).shape == (3, 2, 1, 8, 8)
    assert views_for(tiny_task("joint"), 3).shape == (3, 5, 1, 8, 8)


def test_unit_plans_state_their_sensitivity():
    cfg = TaskConfig(group_size=4)
    assert plan_units(tiny_task("rotation"), cfg, 128).sensitivity == 1.0
    group = plan_units(tiny_task("joint"), cfg, 128)
    assert (group.kind, group.num_groups, group.sensitivity) == ("group", 32, 2.0)
    batch = plan_units(tiny_task("contrastive"), TaskConfig(negatives="batch"), 128)
    assert batch.sensitivity is None


def test_groups_cover_every_image_exactly_once():
    plan = plan_units(tiny_task("joint"), TaskConfig(group_size=3), 30)
    index, mask = form_units(30, plan, torch.Generator().manual_seed(0))
    members = sorted(index[mask.bool()].tolist())
    assert members == list(range(30))


def test_unknown_task_lists_valid_names():
    task = tiny_task("rotation")
    with pytest.raises(ValueError, match="contrastive"):
        build_task(task.model, TaskConfig(name="mae"), AugmentConfig(), 8, 1)
