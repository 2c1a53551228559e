"""Which images are clipped together: the clipping units of a batch.

* ``image``: each image is its own unit (decomposable losses such as rotation). Sensitivity C.
* ``group``: each sampled image draws an independent uniform group id in ``[0, G)`` and the
  images sharing an id form one unit (group-wise clipping; Li et al., DP-GCL, arXiv 2604.26467).
  Sensitivity 2C.
* ``batch``: the whole batch is one unit (SimCLR's in-batch negatives). No useful sensitivity
  bound exists, so this is allowed only with privacy off.
* ``person`` (``privacy.unit=person``, decomposable losses): all the sampled images of one person
  (at most ``privacy.max_images_per_person``) form one unit. Sensitivity C per person.
* ``person-group``: each sampled person draws an independent uniform group id in ``[0, G)``; the
  images of the persons sharing an id form one unit, and NT-Xent takes negatives only from
  *other persons* of the unit. Sensitivity 2C per person.

The mask ``[G, M]`` is 0 for a padded slot and positive for a real image; a value ``k >= 2`` is a
person label (two real images with the same ``k >= 2`` belong to one person), 1 means an image
that is its own person. Losses weight real images by ``mask > 0`` (:func:`real`).

Notes
-----
Why ``group`` has sensitivity 2C. Let D' = D plus one image x. Couple the two runs on the same
sampling and group draws for every other image: because group ids are drawn independently per
image (not by sorting and chunking the batch) from that image's own keyed stream
(:mod:`ssl_fed.train.randomness`), x's presence changes no other image's group. So
only x's group g differs, and the released sum changes by ``clip(h_g(D')) - clip(h_g(D))``,
whose norm is at most ``||clip(.)|| + ||clip(.)|| <= 2C``. The optimizer therefore adds noise with
std ``2 * sigma * C`` and the accountant records ``sigma`` at the image sample rate q.
``G`` is a public constant: ``round(expected_batch_size / group_size)``, never the realised
batch size.

Person units, the same argument with the person as the unit (McMahan et al., "Learning
Differentially Private Recurrent Language Models", arXiv 1710.06963, user-level DP). Let D' = D
plus one person x with any number of images. Inclusion, the capped subset, the group id and the
views of every other person are drawn from that person's own keyed stream
(:mod:`ssl_fed.train.sampling`), so they are the same in D and D'. With ``person``, x's images
form x's own unit, clipped to C: the sum moves by at most C. With ``person-group``, x joins one
group; that group's clipped gradient moves by at most 2C and no other group changes. Negatives
from other persons only is a choice of the loss inside a unit; it does not change the bound. The
cap bounds compute, not sensitivity (clipping does that); it is public.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssl_fed.config import TaskConfig
from ssl_fed.data.views import UniformSource
from ssl_fed.tasks.base import PretextTask

UNIT_LABELS = {
    "image": "one original image at one site (all its views clipped together)",
    "person": (
        "one person at one site (all their images, at most privacy.max_images_per_person per "
        "step, clipped together); ε is per person"
    ),
}
"""What ``privacy.unit`` protects, for model cards, metrics.json and TensorBoard."""


def unit_label(privacy: dict[str, object]) -> str:
    """Return the label of a run's privacy unit from its ``privacy`` config (as a mapping)."""
    if not privacy.get("enabled", True):
        return "none (privacy off)"
    return UNIT_LABELS[str(privacy.get("unit", "image"))]


@dataclass(frozen=True)
class UnitPlan:
    """How a batch is cut into clipping units, and what one image can change."""

    kind: str
    num_groups: int
    sensitivity: float | None

    @property
    def describes(self) -> str:
        """One sentence naming the privacy unit, for reports and metrics.json."""
        if self.kind == "image":
            return (
                "one image at one site; all of its views (augmentations and the 4 rotations) "
                "are summed before one clip to max_grad_norm"
            )
        if self.kind == "person":
            return (
                "one person at one site: the views of all their sampled images (at most "
                "privacy.max_images_per_person) are summed before one clip to max_grad_norm"
            )
        if self.kind == "person-group":
            return (
                "one person at one site: all their sampled images join one random clipping "
                "group of persons (negatives from other persons only), and noise is "
                "calibrated to its sensitivity of 2*max_grad_norm"
            )
        if self.kind == "group":
            return (
                "one image at one site; it shares a clipping group with a random set of "
                "other images (group-wise clipping), and noise is calibrated to its "
                "sensitivity of 2*max_grad_norm"
            )
        return "none: the whole batch is one unit (in-batch negatives, non-private only)"


def plan_units(
    task: PretextTask, cfg: TaskConfig, expected_batch_size: int, unit: str = "image"
) -> UnitPlan:
    """Choose the clipping units for ``task`` and state their sensitivity (in units of C).

    Under ``unit="person"`` the expected batch size and ``group_size`` count persons.
    """
    person = unit == "person"
    if not task.couples_examples:
        return UnitPlan("person" if person else "image", 0, 1.0)
    if cfg.negatives == "group":
        groups = max(1, round(expected_batch_size / cfg.group_size))
        return UnitPlan("person-group" if person else "group", groups, 2.0)
    return UnitPlan("batch", 1, None)


def real(mask: torch.Tensor) -> torch.Tensor:
    """1 for a real image, 0 for a padded slot (the mask may carry person labels >= 2)."""
    return (mask > 0).to(mask.dtype)


def same_person(mask: torch.Tensor) -> torch.Tensor:
    """``[G, M, M]`` True where two real slots are one person (equal labels >= 2, or itself)."""
    labelled = (mask[:, :, None] == mask[:, None, :]) & (mask[:, :, None] >= 2)
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    return labelled | eye


def group_ids(
    batch_size: int, plan: UnitPlan, draws: UniformSource | torch.Generator | None
) -> torch.Tensor:
    """Independent uniform group ids in ``[0, G)``, one per image.

    From the images' own streams (``draws``, purpose ``group``: what training uses, so an image's
    group does not depend on which other images were sampled), or from a torch generator for
    callers outside DP training.
    """
    if draws is None or isinstance(draws, torch.Generator):
        return torch.randint(0, plan.num_groups, (batch_size,), generator=draws)
    u = draws("group", 1)[:, 0]
    return (u * plan.num_groups).long().clamp_(max=plan.num_groups - 1)


def form_units(
    batch_size: int, plan: UnitPlan, draws: UniformSource | torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a batch of ``batch_size`` images into units (group ids from :func:`group_ids`).

    Returns
    -------
    index
        ``[G, M]`` long tensor of image positions, padded with 0 where ``mask`` is 0.
    mask
        ``[G, M]`` float tensor, 1 for a real image. Empty groups are absent; an empty batch gives
        ``G = 0``.
    """
    if batch_size == 0:
        return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1)
    if plan.kind == "image":
        return torch.arange(batch_size).unsqueeze(1), torch.ones(batch_size, 1)
    if plan.kind == "batch":
        return torch.arange(batch_size).unsqueeze(0), torch.ones(1, batch_size)
    ids = group_ids(batch_size, plan, draws)
    used, counts = torch.unique(ids, return_counts=True)
    width = int(counts.max())
    index = torch.zeros(len(used), width, dtype=torch.long)
    mask = torch.zeros(len(used), width)
    for row, gid in enumerate(used.tolist()):
        members = torch.nonzero(ids == gid).squeeze(1)
        index[row, : len(members)] = members
        mask[row, : len(members)] = 1.0
    return index, mask


def form_person_units(
    owner: torch.Tensor, plan: UnitPlan, group: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a batch into person units: ``owner[b]`` is the person slot ``0..P-1`` of image ``b``.

    ``plan.kind == "person"``: one unit per person. ``"person-group"``: ``group[p]`` is person
    ``p``'s group id in ``[0, G)`` (from the person's own stream) and a unit holds the images of
    the persons of one group. Same ``index``/``mask`` contract as :func:`form_units`, with person
    labels ``2 + p`` in the mask.
    """
    if len(owner) == 0:
        return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1)
    unit_of_person = group if plan.kind == "person-group" else None
    persons = int(owner.max()) + 1
    if unit_of_person is None:
        unit_of_person = torch.arange(persons)
    unit = unit_of_person[owner]
    used, counts = torch.unique(unit, return_counts=True)
    index = torch.zeros(len(used), int(counts.max()), dtype=torch.long)
    mask = torch.zeros(len(used), int(counts.max()))
    for row, uid in enumerate(used.tolist()):
        members = torch.nonzero(unit == uid).squeeze(1)
        index[row, : len(members)] = members
        mask[row, : len(members)] = (2 + owner[members]).to(mask.dtype)
    return index, mask


def gather_units(views: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Arrange per-image views ``[B, V, ...]`` as units ``[G, M, V, ...]``."""
    return views[index]
