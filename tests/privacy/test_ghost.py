"""Ghost clipping against the vmap reference: per-unit norms, clipped sums, whole steps."""

import copy
import warnings

import pytest
import torch
from torch import nn

from ssl_fed.privacy import ghost
from ssl_fed.privacy.dpsgd import DPSGDStep
from ssl_fed.privacy.ghost import GhostUnsupported, ghost_clipped_sum, ghost_unsupported_reason
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.tasks import TASKS
from ssl_fed.tasks.units import form_person_units, gather_units, plan_units
from tests.helpers import images, tiny_task, views_for
from tests.privacy.sensitivity_audit import audit_config, released_sums

GROUPS = (torch.tensor([[0, 3, 5], [1, 0, 0], [2, 4, 6]]), [[1, 1, 1], [1, 0, 0], [1, 1, 1]])
"""Three padded units of 7 images: multi-row units, and a padded slot that must count for 0."""


def batch(task, n=7):
    """Per-image units for a decomposable task, the padded groups above for a coupling one."""
    views = views_for(task, n)
    if not task.couples_examples:
        return gather_units(views, torch.arange(n).unsqueeze(1)), torch.ones(n, 1).double()
    index, mask = GROUPS
    return gather_units(views, index), torch.tensor(mask, dtype=torch.float64)


def reference(task, views, mask, c):
    """vmap per-unit gradients, their norms, and Σ min(1, C/(‖g‖+1e-6)) g (Opacus' factor)."""
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}
    grads, _ = per_unit_gradients(task, params, views, mask)
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads.values()]).sum(0).sqrt()
    factor = (c / (norms + 1e-6)).clamp(max=1.0)
    return norms, {n: torch.einsum("g,g...->...", factor, g) for n, g in grads.items()}


def assert_matches_reference(task, views, mask, c=None):
    norms_ref, sums_ref = reference(task, views, mask, 1.0)
    c = float(norms_ref.median()) if c is None else c
    _, sums_ref = reference(task, views, mask, c)
    sums, _, norms = ghost_clipped_sum(task, views, mask, c)
    torch.testing.assert_close(norms, norms_ref, atol=1e-5, rtol=1e-5)
    assert sums.keys() == sums_ref.keys()
    for name, value in sums_ref.items():
        torch.testing.assert_close(sums[name], value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["auto", "ghost", "direct"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_norms_and_clipped_sums_equal_the_vmap_reference(monkeypatch, name, mode):
    # Prepare: every task (rotation per image, contrastive and joint in multi-row groups); the
    # layer-wise choice as it is, or forced to ghost norms or to direct per-unit gradients
    if mode != "auto":
        monkeypatch.setattr(ghost, "use_ghost_norm", lambda *_: mode == "ghost")
    task = tiny_task(name)
    views, mask = batch(task)

    # Execute / Assert: C = the median norm, so some units are clipped and some are not
    assert_matches_reference(task, views, mask)


@pytest.mark.parametrize(("name", "unit"), [("rotation", "person"), ("joint", "person")])
def test_person_units_equal_the_vmap_reference(name, unit):
    # Prepare: 7 images of 4 persons (labels >= 2 in the mask); joint groups persons in pairs
    task = tiny_task(name)
    plan = plan_units(task, task.cfg, 4, unit)
    owner = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    index, mask = form_person_units(owner, plan, torch.tensor([0, 1, 0, 1]))
    views = gather_units(views_for(task, 7), index)

    # Execute / Assert
    assert_matches_reference(task, views, mask.double())


def test_a_trainable_subset_equals_the_vmap_reference():
    # Prepare: block1 frozen, and block2's conv bias frozen alone (its weight still trains)
    task = tiny_task("joint")
    for pname, param in task.named_parameters():
        if ".block1." in pname or pname.endswith("block2.0.bias"):
            param.requires_grad_(False)
    views, mask = batch(task)

    # Execute / Assert: frozen parameters have no entry, the rest match
    assert_matches_reference(task, views, mask)
    sums, _, _ = ghost_clipped_sum(task, views, mask, 1.0)
    assert not any(".block1." in n or n.endswith("block2.0.bias") for n in sums)


def test_augmentation_multiplicity_equals_the_vmap_reference():
    # Prepare: K = 2 view sets per image ([G, M, K, V, ...]), averaged inside the unit
    task = tiny_task("joint")
    task.cfg.multiplicity = 2
    views, mask = batch(task)
    assert views.ndim == 7

    # Execute / Assert
    assert_matches_reference(task, views, mask)


def test_units_below_c_are_summed_unscaled():
    # Prepare: C far above every norm
    task = tiny_task("contrastive")
    views, mask = batch(task)
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}
    grads, _ = per_unit_gradients(task, params, views, mask)

    # Execute
    sums, _, _ = ghost_clipped_sum(task, views, mask, 1e9)

    # Assert: the plain sum of the unit gradients (factor exactly 1)
    for name, g in grads.items():
        torch.testing.assert_close(sums[name], g.sum(0), atol=1e-10, rtol=1e-8)


def dp_step(task, method, c, extra=None):
    step = DPSGDStep(
        task,
        torch.optim.SGD([p for _, p in task.trainable_named_parameters()], lr=0.5),
        noise_multiplier=0.0,
        max_grad_norm=c,
        sensitivity=2.0,
        expected_batch_size=5,
        method=method,
    )
    step.extra_units = extra
    return step


@pytest.mark.parametrize("name", sorted(TASKS))
def test_without_noise_the_ghost_step_equals_the_vmap_step(name):
    # Prepare: two copies, σ = 0, C = the median unit norm, plus two audit canary rows (one
    # above C, one below) through the extra_units seam
    task = tiny_task(name)
    views, mask = batch(task)
    c = float(reference(task, views, mask, 1.0)[0].median())
    shapes = {n: p.shape for n, p in task.trainable_named_parameters()}

    def canaries():
        rows = {n: torch.zeros(2, *s, dtype=torch.float64) for n, s in shapes.items()}
        first = next(iter(rows))
        rows[first].view(2, -1)[0, 0], rows[first].view(2, -1)[1, 1] = 10 * c, c / 10
        return rows

    copies = {m: copy.deepcopy(task) for m in ("ghost", "vmap")}

    # Execute
    terms = {m: dp_step(t, m, c, canaries)(views, mask) for m, t in copies.items()}

    # Assert: same parameters after the step, same reported loss terms
    after = {m: dict(t.trainable_named_parameters()) for m, t in copies.items()}
    for pname, value in after["vmap"].items():
        torch.testing.assert_close(after["ghost"][pname], value, atol=1e-7, rtol=1e-6)
    assert terms["ghost"] == pytest.approx(terms["vmap"])


def test_an_empty_batch_takes_a_noise_only_step():
    # Prepare: σ = 1, no units at all
    task = tiny_task("rotation")
    before = copy.deepcopy(dict(task.trainable_named_parameters()))
    step = dp_step(task, "ghost", 1.0)
    step.optimizer.noise_multiplier = 1.0

    # Execute
    terms = step(torch.zeros(0, 1, 4, 1, 8, 8, dtype=torch.float64), torch.zeros(0, 1).double())

    # Assert: every parameter moved (noise), the losses are 0
    assert terms == {"rotation": 0.0}
    for pname, param in task.trainable_named_parameters():
        assert not torch.equal(param, before[pname])


def test_a_layer_without_a_rule_falls_back_to_vmap_with_its_reason():
    # Prepare: a PReLU (a parameter ghost has no rule for) in the rotation head
    task = tiny_task("rotation")
    task.model.heads["rotation"] = nn.Sequential(nn.Linear(32, 4), nn.PReLU()).double()

    # Execute
    with pytest.warns(UserWarning, match="PReLU"):
        step = dp_step(task, "ghost", 1.0)

    # Assert
    assert "PReLU" in str(ghost_unsupported_reason(task))
    assert step.method == "vmap"


def test_a_layer_run_twice_falls_back_to_vmap_and_still_takes_the_reference_step():
    # Prepare: one Linear applied twice in the rotation head (its rows are not one per view)
    task = tiny_task("rotation")
    twice = nn.Linear(32, 32)
    task.model.heads["rotation"] = nn.Sequential(twice, nn.Tanh(), twice, nn.Linear(32, 4))
    task.double()
    views, mask = batch(task)
    copies = {m: copy.deepcopy(task) for m in ("ghost", "vmap")}
    with pytest.raises(GhostUnsupported, match="twice"):
        ghost_clipped_sum(task, views, mask, 1.0)

    # Execute
    vmap_step = dp_step(copies["vmap"], "vmap", 0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ghost_step = dp_step(copies["ghost"], "ghost", 0.05)
        ghost_step(views, mask)
    vmap_step(views, mask)

    # Assert: warned once with the reason, and the step is the vmap step
    assert ghost_step.method == "vmap"
    assert [str(w.message) for w in caught if "twice" in str(w.message)]
    after = dict(copies["vmap"].trainable_named_parameters())
    for pname, value in copies["ghost"].trainable_named_parameters():
        torch.testing.assert_close(value, after[pname])


def test_the_training_path_releases_the_same_clipped_sums_as_vmap(monkeypatch, tmp_path):
    # Prepare: train_local itself (Poisson sampling at q = 1, groups, multiplicity 2), lr 0
    sums = {}
    for method in ("ghost", "vmap"):
        cfg = audit_config("joint", 16, public_size=12, c=1e-2, multiplicity=2, method=method)

        # Execute
        sums[method] = released_sums(monkeypatch, tmp_path / method, cfg, images(12), b"k" * 32)

    # Assert: one released clipped sum per step, equal to float32 precision
    assert len(sums["ghost"]) == len(sums["vmap"]) == 1
    torch.testing.assert_close(sums["ghost"][0], sums["vmap"][0], atol=1e-6, rtol=1e-4)
