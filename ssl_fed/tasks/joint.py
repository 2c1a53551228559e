"""Rotation and contrastive on the same images, as one loss per unit."""

from __future__ import annotations

import torch

from ssl_fed.data.views import UniformSource, rotate_four
from ssl_fed.tasks.base import PretextTask, register_task
from ssl_fed.tasks.contrastive import nt_xent_terms
from ssl_fed.tasks.rotation import rotation_terms


@register_task("joint")
class JointTask(PretextTask):
    """``lambda_rot * rotation + lambda_con * contrastive`` on the same images.

    Views, per image: the 4 rotations of a first random view, then a second random view:
    ``[B, 5, C, H, W]``. The contrastive pair is (view 1 unrotated, view 2), so the encoder runs
    on 5 rows per image instead of 6.

    Notes
    -----
    Both terms belong to one loss per unit, so one unit is clipped once, gets one noise draw and
    costs one accountant step. Two separate DP steps per batch would compose and double the
    spend. Because the contrastive term couples the images of a unit, the unit is a random group
    and the sensitivity is 2C, as for the contrastive task.
    """

    couples_examples = True
    heads = ("rotation", "projection")

    def make_view_set(
        self, images: torch.Tensor, draws: UniformSource, set_id: str
    ) -> torch.Tensor:
        """Return ``[rot0(v1), rot90(v1), rot180(v1), rot270(v1), v2]`` per image."""
        first = rotate_four(self.augment(images, draws, f"{set_id}/view1"))
        second = self.augment(images, draws, f"{set_id}/view2")
        return torch.cat([first, second.unsqueeze(1)], dim=1)

    def term_names(self) -> tuple[str, ...]:
        """Two terms: ``rotation`` and ``contrastive``."""
        return ("rotation", "contrastive")

    def weights(self) -> dict[str, float]:
        """``lambda_rot`` and ``lambda_con`` from the config."""
        return {"rotation": self.cfg.lambda_rot, "contrastive": self.cfg.lambda_con}

    def unit_terms(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"rotation": [G], "contrastive": [G]}``."""
        h = self.embed(views)
        pair = torch.stack([h[:, :, 0], h[:, :, 4]], dim=2)
        return {
            "rotation": rotation_terms(self, h[:, :, :4], mask),
            "contrastive": nt_xent_terms(self, pair, mask),
        }
