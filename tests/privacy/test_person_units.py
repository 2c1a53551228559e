"""Person units: per-person gradients, negatives from other persons, the capped keyed subset."""

import numpy as np
import pytest
import torch

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.privacy.unit_hooks import per_unit_gradients_hooks
from ssl_fed.tasks.contrastive import nt_xent_terms
from ssl_fed.tasks.units import UnitPlan, form_person_units, form_units, gather_units
from ssl_fed.train.sampling import PersonSampler
from tests.helpers import images, tiny_task

KEY = b"u" * 32
PERSON = UnitPlan("person", 0, 1.0)


def person_site(sizes: list[int], seed: int = 0) -> ImageDataset:
    ids = tuple(f"p{p}" for p, m in enumerate(sizes) for _ in range(m))
    return ImageDataset(images(len(ids), seed), None, "persons", ids)


def params_of(task):
    return {n: p.detach() for n, p in task.trainable_named_parameters()}


@pytest.mark.parametrize("method", ["vmap", "hooks"])
def test_per_person_gradients_equal_one_person_at_a_time(method):
    # Prepare: 4 persons with 1..4 images, all sampled (q = 1), rotation views from the streams
    task = tiny_task("rotation")
    data = person_site([3, 1, 4, 2])
    batch = PersonSampler(KEY, data, PERSON, 1.0, cap=8).batch(0)
    views = task.make_views(data.images[torch.from_numpy(batch.positions)], batch.draws).double()
    units = gather_units(views, batch.unit_index)

    # Execute
    if method == "vmap":
        grads, _ = per_unit_gradients(task, params_of(task), units, batch.mask)
    else:
        grads, _ = per_unit_gradients_hooks(task, units, batch.mask)

    # Assert: row u is the gradient of person u's loss computed on that person alone
    assert batch.unit_index.shape[0] == 4
    params = [p for _, p in task.trainable_named_parameters()]
    for row in range(4):
        members = batch.unit_index[row][batch.mask[row] > 0]
        alone = views[members].unsqueeze(0)
        loss = task.combine(task(alone, torch.ones(1, len(members), dtype=alone.dtype))).sum()
        truth = torch.autograd.grad(loss, params)
        for (name, _), g in zip(task.trainable_named_parameters(), truth, strict=True):
            torch.testing.assert_close(grads[name][row], g, rtol=1e-6, atol=1e-9)


def reference_nt_xent(z: torch.Tensor, person: list[int], temperature: float) -> float:
    """Anchor by anchor: positive = the other view; negatives = views of other persons only."""
    total = 0.0
    m = len(person)
    for i in range(m):
        for v in range(2):
            a = z[2 * i + v]
            pos = float(a @ z[2 * i + 1 - v]) / temperature
            negs = [
                float(a @ z[2 * j + w]) / temperature
                for j in range(m)
                if person[j] != person[i]
                for w in range(2)
            ]
            logits = torch.tensor([pos, *negs], dtype=torch.float64)
            total += 0.5 * float(torch.logsumexp(logits, 0) - pos)
    return total


def test_nt_xent_takes_negatives_only_from_other_persons():
    # Prepare: one unit of 5 images of persons [a, b, a, c, b] (labels 2, 3, 2, 4, 3)
    task = tiny_task("contrastive")
    h = task.embed(task.make_views(images(5, seed=2)).double().unsqueeze(0)).detach()
    mask = torch.tensor([[2.0, 3.0, 2.0, 4.0, 3.0]], dtype=torch.float64)
    z = torch.nn.functional.normalize(task.model.heads["projection"](h), dim=-1).reshape(10, -1)

    # Execute
    loss = float(nt_xent_terms(task, h, mask)[0].detach())

    # Assert: equals the anchor-by-anchor reference, and differs from all-negatives
    assert loss == pytest.approx(reference_nt_xent(z.detach(), [0, 1, 0, 2, 1], 0.5), rel=1e-9)
    assert loss != pytest.approx(float(nt_xent_terms(task, h, torch.ones_like(mask))[0].detach()))


def test_the_cap_draws_a_uniform_subset_from_the_persons_own_stream():
    # Prepare: person 0 has 10 images, cap 3; person 1 has 2 images
    data = person_site([10, 2])
    sampler = PersonSampler(KEY, data, PERSON, 1.0, cap=3)
    without = PersonSampler(
        KEY, ImageDataset(data.images[:10], None, "p0", data.persons[:10]), PERSON, 1.0, cap=3
    )

    # Execute: 2000 steps
    counts = np.zeros(10)
    for t in range(2000):
        chosen = sampler.chosen_images(t, 0)
        counts[chosen] += 1
        # Assert (coupling): the subset of person 0 does not depend on person 1's presence
        assert np.array_equal(chosen, without.chosen_images(t, 0))
        assert len(chosen) == 3

    # Assert: each image is used at rate 3/10 (binomial sd ≈ 0.010; 5 sd)
    assert np.all(np.abs(counts / 2000 - 0.3) < 0.05)
    assert np.array_equal(sampler.chosen_images(0, 1), [10, 11])


def test_persons_with_one_image_form_exactly_the_image_units():
    # Prepare: 6 one-image persons; group ids shared by both plans
    task = tiny_task("joint")
    views = task.make_views(images(6)).double()
    group = torch.tensor([1, 0, 1, 2, 0, 1])
    image_plan, person_plan = UnitPlan("group", 3, 2.0), UnitPlan("person-group", 3, 2.0)

    def draws(purpose, count):
        return ((group.double() + 0.5) / 3).unsqueeze(1)

    # Execute
    i_index, i_mask = form_units(6, image_plan, draws)
    p_index, p_mask = form_person_units(torch.arange(6), person_plan, group)
    i_grads, i_terms = per_unit_gradients(
        task, params_of(task), gather_units(views, i_index), i_mask.double()
    )
    p_grads, p_terms = per_unit_gradients(
        task, params_of(task), gather_units(views, p_index), p_mask.double()
    )

    # Assert: same units, same per-unit gradients and losses, bit for bit
    assert torch.equal(i_index, p_index) and torch.equal(i_mask > 0, p_mask > 0)
    for name in i_grads:
        assert torch.equal(i_grads[name], p_grads[name])
    for name in i_terms:
        assert torch.equal(i_terms[name], p_terms[name])
