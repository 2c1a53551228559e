"""Small shared builders for tests: a tiny model and task, seeded views."""

from __future__ import annotations

import torch

from ssl_fed.config import AugmentConfig, EncoderConfig, TaskConfig
from ssl_fed.models import build_model
from ssl_fed.tasks import PretextTask, build_task


def tiny_task(name: str, *, negatives: str = "group", seed: int = 0) -> PretextTask:
    """A width-8 GroupNorm model on 1x8x8 images with the named task, in float64."""
    torch.manual_seed(seed)
    model = build_model(EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8), 1)
    cfg = TaskConfig(name=name, negatives=negatives, temperature=0.5)
    return build_task(model, cfg, AugmentConfig(), 8, 1).double()


def images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random 1x8x8 images in [0, 1]."""
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def views_for(task: PretextTask, n: int, seed: int = 0) -> torch.Tensor:
    """Seeded views ``[n, V, 1, 8, 8]`` of ``n`` random images, in float64."""
    torch.manual_seed(seed)
    return task.make_views(images(n, seed)).double()
