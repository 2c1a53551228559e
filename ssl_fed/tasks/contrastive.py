"""SimCLR's NT-Xent contrastive task (Chen et al., arXiv 2002.05709), negatives inside a unit."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ssl_fed.data.views import UniformSource
from ssl_fed.tasks.base import PretextTask, register_task
from ssl_fed.tasks.units import real, same_person

_MASKED = -1e9


def nt_xent_terms(task: PretextTask, h_pair: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over a unit's real images of NT-Xent, negatives from the same unit only.

    ``h_pair`` is ``[G, M, 2, D]`` (two views per image). Each of the 2M views is an anchor; its
    positive is the other view of its image and its negatives are the views of the *other real
    images of its unit*. An image's loss is the mean over its two anchors. Padded slots are masked
    out as anchors and as negatives (with a large negative logit, not -inf, so no NaN appears), so
    a unit's loss equals the loss of its real images alone. A unit with one real image has no
    negatives and a loss of exactly 0. Under person units, an anchor's negatives exclude the
    views of the other images of its own person (equal mask labels >= 2,
    :func:`ssl_fed.tasks.units.same_person`): a second image of the same patient is not a
    negative.
    """
    g, m = mask.shape
    z = F.normalize(task.model.heads["projection"](h_pair), dim=-1).reshape(g, 2 * m, -1)
    logits = torch.bmm(z, z.transpose(1, 2)) / task.cfg.temperature
    valid = real(mask).repeat_interleave(2, dim=1)
    positive = torch.arange(2 * m, device=z.device) ^ 1
    own = same_person(mask).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    own = own & ~(positive.unsqueeze(1) == torch.arange(2 * m, device=z.device)).unsqueeze(0)
    keep = valid.unsqueeze(1).bool() & ~own
    logits = torch.where(keep, logits, torch.full_like(logits, _MASKED))
    pos_logit = logits.gather(2, positive.expand(g, -1).unsqueeze(-1)).squeeze(-1)
    anchor_loss = torch.logsumexp(logits, dim=-1) - pos_logit
    per_image = anchor_loss.reshape(g, m, 2).mean(dim=-1)
    return (per_image * real(mask)).sum(dim=-1)


@register_task("contrastive")
class ContrastiveTask(PretextTask):
    """Pull two augmented views of an image together, push other images of its unit away.

    Views: two random augmentations of each image, ``[B, 2, C, H, W]``.

    Notes
    -----
    NT-Xent couples images: each image's embedding appears in the denominator of every other
    anchor in its unit. With in-batch negatives (one unit = the whole batch) removing one image
    changes every row's gradient, and the sensitivity of the clipped sum is up to ~2nC, so that
    mode is refused under DP. Under DP the unit is a random group (group-wise clipping, see
    :mod:`ssl_fed.tasks.units`), whose clipped gradient moves by at most 2C.
    """

    couples_examples = True
    heads = ("projection",)

    def make_view_set(
        self, images: torch.Tensor, draws: UniformSource, set_id: str
    ) -> torch.Tensor:
        """Return two independent random views of each image."""
        views = [self.augment(images, draws, f"{set_id}/view{v}") for v in (1, 2)]
        return torch.stack(views, dim=1)

    def term_names(self) -> tuple[str, ...]:
        """One term: ``contrastive``."""
        return ("contrastive",)

    def unit_terms(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return ``{"contrastive": [G]}``."""
        return {"contrastive": nt_xent_terms(self, self.embed(views), mask)}
