"""Rotation prediction (RotNet; Gidaris, Singh & Komodakis, arXiv 1803.07728)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ssl_fed.data.views import UniformSource, rotate_four
from ssl_fed.tasks.base import PretextTask, register_task
from ssl_fed.tasks.units import real


def rotation_terms(task: PretextTask, h_rot: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over a unit's real images of the mean 4-way CE: ``h_rot`` is ``[G, M, 4, D]``."""
    logits = task.model.heads["rotation"](h_rot)
    targets = torch.arange(4, device=logits.device).expand(logits.shape[:-1])
    ce = F.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1), reduction="none")
    per_image = ce.reshape(targets.shape).mean(dim=-1)
    return (per_image * real(mask)).sum(dim=-1)


@register_task("rotation")
class RotationTask(PretextTask):
    """Predict which of the 4 rotations of an augmented view was applied.

    Views: the 4 rotations of one augmented view of each image, ``[B, 4, C, H, W]``.
    Loss per image: mean cross-entropy over its 4 rotations.

    Notes
    -----
    One image's loss depends on that image alone (GroupNorm, no batch statistics), so the loss is
    decomposable: the 4 rotations are summed inside the image's unit and clipped once, and
    adding or removing one image changes the clipped sum by at most C.
    """

    couples_examples = False
    heads = ("rotation",)

    def make_view_set(
        self, images: torch.Tensor, draws: UniformSource, set_id: str
    ) -> torch.Tensor:
        """Return the 4 rotations of one random view of each image."""
        return rotate_four(self.augment(images, draws, f"{set_id}/view"))

    def term_names(self) -> tuple[str, ...]:
        """One term: ``rotation``."""
        return ("rotation",)

    def unit_terms(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"rotation": [G]}``."""
        return {"rotation": rotation_terms(self, self.embed(views), mask)}
