"""Measure what one image changes in the clipped unit gradients: check the declared sensitivity.

The accountant's ε is only as right as the sensitivity the step declares (in units of C: 1 for
per-image units, 2 for random groups, :class:`~ssl_fed.tasks.units.UnitPlan`). A wrong
declaration (say 1 for group contrastive) scales the noise down by the same factor while the
ledger reports the same ε. The canary test (:mod:`ssl_fed.audit.bound`) cannot see a factor-2
error at the ε a site trains at: a white-box group audit with 200 canaries at ε = 2 gave
ε_lower 0.64-0.77 with the bug (0.03 without), far from flagging it (tests/audit/test_run.py).

This probe measures the quantity directly, on real units of the site's data: for each unit ``u``
and each member image ``j``, ``||clip(g_u) - clip(g_u without j)|| / C``, where ``clip`` is the
step's per-unit clip to norm C and "without j" masks ``j`` out of its unit (a unit of one image
disappears: the change is ``||clip(g_u)||``). Each value is a change one image really causes, so
the largest is a lower bound on the true sensitivity: above the declared one, the declaration
is wrong and the audit flags it.

Person units (``privacy.unit=person``): the neighbour is one whole person, so the probe removes
all of a person's images from its unit at once (:func:`probe_persons`); the declared
sensitivity is then per person (C for ``person``, 2C for ``person-group``).

Notes
-----
Guarantee: one-sided. A measured value above the declared sensitivity proves the mechanism adds
too little noise for the ε it reports (no false alarm beyond float rounding, :data:`TOLERANCE`).
A value below it proves nothing: the worst-case image may not be in the probed batch.
"""

from __future__ import annotations

import numpy as np
import torch

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import person_codes
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan, form_person_units, form_units, gather_units

TOLERANCE = 1e-4
"""Relative slack for float rounding before a measured sensitivity counts as above the declared."""


def _clipped_flat(grads: dict[str, torch.Tensor], max_norm: float) -> torch.Tensor:
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1).double()
    norms = flat.norm(dim=1, keepdim=True)
    return flat * torch.clamp(max_norm / torch.clamp(norms, min=1e-30), max=1.0)


def owners(row: torch.Tensor) -> list[torch.Tensor]:
    """Slots of one unit's mask row, grouped by who owns them (the neighbour to remove).

    A person label ``k >= 2`` (:mod:`ssl_fed.tasks.units`) groups all of that person's slots;
    a slot marked 1 is an image that is its own unit of privacy.
    """
    real = torch.nonzero(row > 0).squeeze(1)
    out: list[torch.Tensor] = []
    for label in torch.unique(row[real]).tolist():
        slots = real[row[real] == label]
        out.extend([slots] if label >= 2 else [slots[i : i + 1] for i in range(len(slots))])
    return out


def measured_sensitivity(
    task: PretextTask, units: torch.Tensor, mask: torch.Tensor, max_norm: float
) -> float:
    """Return the largest change one privacy unit makes to its clipping unit's gradient, in C.

    ``units`` is ``[G, M, V, ...]`` (views per unit, :func:`~ssl_fed.tasks.units.gather_units`)
    and ``mask`` ``[G, M]``. The removed neighbour is one image, or one whole *person* (all of
    their slots, :func:`owners`) when the mask carries person labels.
    """
    params = {n: p.detach() for n, p in task.trainable_named_parameters()}
    base = _clipped_flat(per_unit_gradients(task, params, units, mask)[0], max_norm)
    worst = 0.0
    for u in range(units.shape[0]):
        who = owners(mask[u])
        if len(who) == 1:
            worst = max(worst, float(base[u].norm()))
            continue
        drop = mask[u].repeat(len(who), 1)
        for row, slots in enumerate(who):
            drop[row, slots] = 0.0
        copies = units[u].unsqueeze(0).expand(len(who), *units.shape[1:])
        without = _clipped_flat(per_unit_gradients(task, params, copies, drop)[0], max_norm)
        worst = max(worst, float((without - base[u]).norm(dim=1).max()))
    return worst / max_norm


def exceeds(measured: float, declared: float) -> bool:
    """Whether a measured sensitivity proves the declared one wrong (beyond :data:`TOLERANCE`)."""
    return measured > declared * (1.0 + TOLERANCE)


PROBE_IMAGES = 64
"""Images of the site's data the probe cuts into per-image units (at most this many)."""
PROBE_SCALE = 1e-6
"""The probe's clipping norm, relative to C (see :func:`probe_site`)."""
PROBE_DRAWS = 8
"""Random batches the probe measures for a group plan (the largest change counts)."""
IMAGES_PER_GROUP = 2
"""Group plans: the probe's batch holds about this many images per group.

Poisson sampling makes small batches, hence small groups, part of the mechanism, and one image
moves a small group's gradient most (measured on the tiny test model, groups of 10 images: 0.58C;
of about 2: above 1C).
"""


def probe_site(
    task: PretextTask, images: torch.Tensor, plan: UnitPlan, max_norm: float, gen: torch.Generator
) -> float:
    """Cut random batches of the site's images into units as a step would; return the largest.

    The declared sensitivity holds for every clipping norm, so the probe measures at
    ``max_norm x`` :data:`PROBE_SCALE`, where every unit is clipped: there one image's effect is
    not hidden by gradients far below C. Group plans: :data:`PROBE_DRAWS` random batches of
    about :data:`IMAGES_PER_GROUP` images per group (on the tiny test model single draws gave
    0.73-1.19C, so one draw is not enough to catch a declaration of 1).
    """
    group = plan.kind == "group"
    size = min(len(images), IMAGES_PER_GROUP * plan.num_groups if group else PROBE_IMAGES)
    param = next(task.parameters())
    worst = 0.0
    for _ in range(PROBE_DRAWS if group else 1):
        batch = images[torch.randperm(len(images), generator=gen)[:size]]
        with torch.no_grad():
            views = task.make_views(batch)
        index, mask = form_units(size, plan, gen)
        units = gather_units(views, index).to(param.dtype)
        got = measured_sensitivity(task, units, mask.to(param.dtype), max_norm * PROBE_SCALE)
        worst = max(worst, got)
    return worst


PROBE_PERSONS = 16
"""Person plans: persons of the site the probe cuts into person units (at most this many)."""


def _person_batch(
    members: list[torch.Tensor], count: int, cap: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random persons, each with a uniform random subset of at most ``cap`` images."""
    chosen = torch.randperm(len(members), generator=gen)[:count]
    parts = []
    for p in chosen.tolist():
        mine = members[p]
        parts.append(mine[torch.randperm(len(mine), generator=gen)[:cap]])
    owner = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(x) for x in parts]))
    return torch.cat(parts), owner


def probe_persons(
    task: PretextTask,
    data: ImageDataset,
    plan: UnitPlan,
    max_norm: float,
    gen: torch.Generator,
    cap: int,
) -> float:
    """Measure per person: remove one whole person (up to ``cap`` images) from its unit.

    Units are formed as :class:`~ssl_fed.train.sampling.PersonSampler` forms them (one unit per
    person, or random groups of persons), from :data:`PROBE_PERSONS` persons (``person``) or
    about :data:`IMAGES_PER_GROUP` persons per group (``person-group``,
    :data:`PROBE_DRAWS` draws), at the clip :data:`PROBE_SCALE` of :func:`probe_site`.
    """
    assert data.persons is not None, "the person probe needs person ids"
    codes, names = person_codes(data.persons)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    members = [torch.from_numpy(order[bounds[p] : bounds[p + 1]]) for p in range(len(names))]
    group = plan.kind == "person-group"
    count = min(len(names), IMAGES_PER_GROUP * plan.num_groups if group else PROBE_PERSONS)
    param = next(task.parameters())
    worst = 0.0
    for _ in range(PROBE_DRAWS if group else 1):
        index, owner = _person_batch(members, count, cap, gen)
        ids = torch.randint(0, max(plan.num_groups, 1), (count,), generator=gen)
        with torch.no_grad():
            views = task.make_views(data.images[index])
        unit_index, mask = form_person_units(owner, plan, ids if group else None)
        units = gather_units(views, unit_index).to(param.dtype)
        got = measured_sensitivity(task, units, mask.to(param.dtype), max_norm * PROBE_SCALE)
        worst = max(worst, got)
    return worst


def probe(
    task: PretextTask,
    data: ImageDataset,
    plan: UnitPlan,
    max_norm: float,
    gen: torch.Generator,
    cap: int,
) -> float:
    """Probe the site's declared sensitivity per privacy unit: image or person."""
    if plan.kind in ("person", "person-group"):
        return probe_persons(task, data, plan, max_norm, gen, cap)
    return probe_site(task, data.images, plan, max_norm, gen)
