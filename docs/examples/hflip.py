"""Horizontal-flip prediction: a toy pretext task in one file (plus its task YAML).

Copy this file to ``ssl_fed/tasks/hflip.py`` (every module there is imported), or keep it anywhere
and name it in ``SSL_FED_PLUGINS`` (see :mod:`ssl_fed.plugins`). ``docs/extending.md`` walks
through it; ``tests/integration/test_plugin_task.py`` trains and federates it.

Notes
-----
One image's loss depends on that image alone (GroupNorm encoder, no batch statistics), so the
task is decomposable (``couples_examples = False``): the unit is one image and adding or removing
it changes the clipped sum by at most C. Use it on data whose augmentation does not flip
(``data.augment.hflip=false``), or the label "flipped" is noise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ssl_fed.config import EncoderConfig
from ssl_fed.data.views import UniformSource
from ssl_fed.models import register_head
from ssl_fed.tasks.base import PretextTask, register_task


@register_head("hflip")
def build_hflip_head(in_dim: int, cfg: EncoderConfig) -> nn.Module:
    """Build a linear 2-way classifier over the encoder output: unflipped or flipped."""
    return nn.Linear(in_dim, 2)


@register_task("hflip")
class HFlipTask(PretextTask):
    """Predict whether an augmented view was mirrored left-right.

    Views: one augmented view of each image and its mirror image, ``[B, 2, C, H, W]``.
    Loss per image: mean 2-way cross-entropy over the two views.
    """

    couples_examples = False
    heads = ("hflip",)

    def make_view_set(
        self, images: torch.Tensor, draws: UniformSource, set_id: str
    ) -> torch.Tensor:
        """Return ``[view, mirrored view]`` per image."""
        view = self.augment(images, draws, f"{set_id}/view")
        return torch.stack([view, view.flip(-1)], dim=1)

    def term_names(self) -> tuple[str, ...]:
        """One term: ``hflip``."""
        return ("hflip",)

    def unit_terms(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"hflip": [G]}``: each unit's sum over its real images."""
        logits = self.model.heads["hflip"](self.embed(views))
        targets = torch.arange(2, device=logits.device).expand(logits.shape[:-1])
        ce = F.cross_entropy(logits.reshape(-1, 2), targets.reshape(-1), reduction="none")
        per_image = ce.reshape(targets.shape).mean(dim=-1)
        return {"hflip": (per_image * mask).sum(dim=-1)}
