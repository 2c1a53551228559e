"""The pretext-task interface and the registry of tasks.

A task is an ``nn.Module`` that owns the :class:`~ssl_fed.models.SSLModel` and maps a batch of
*units* to one loss per unit. A unit is the set of images that is clipped together: one image, or
one random group of images when the loss couples images (contrastive negatives). Views arrive as
``[G, M, V, C, H, W]`` (G units, at most M images per unit, V views per image) with a mask
``[G, M]`` marking real images; padded slots must not change any real image's loss. The caller
reduces; a task never sums over units, so per-unit gradients can be taken with ``torch.func``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ssl_fed.config import AugmentConfig, TaskConfig
from ssl_fed.data.views import ContrastiveAugment, GlobalUniforms, UniformSource
from ssl_fed.models import SSLModel


class PretextTask(nn.Module, ABC):
    """Base class: views for a batch of images, and the per-unit loss terms.

    Attributes
    ----------
    couples_examples
        True when one image's loss depends on other images in its unit (in-batch negatives).
        Such a task can only be clipped per *group*, never per image.
    heads
        Names of the model's heads the task trains (the encoder is always trained); each is a
        key of ``model.heads``, registered with :func:`ssl_fed.models.register_head`, usually in
        the task's own file.
    """

    couples_examples: bool = False
    heads: tuple[str, ...] = ()

    def __init__(
        self,
        model: SSLModel,
        cfg: TaskConfig,
        augment: AugmentConfig,
        image_size: int,
        channels: int,
    ) -> None:
        super().__init__()
        missing = [h for h in self.heads if h not in model.heads]
        if missing:
            raise ValueError(
                f"task {cfg.name!r} needs heads {missing} that the model lacks (it has "
                f"{sorted(model.heads)}); register them with ssl_fed.models.register_head"
            )
        self.model = model
        self.cfg = cfg
        self.augment = ContrastiveAugment(augment, image_size, channels)

    @abstractmethod
    def make_view_set(
        self, images: torch.Tensor, draws: UniformSource, set_id: str
    ) -> torch.Tensor:
        """Return one random set of views per image ``[B, V, C, H, W]`` (made without gradients).

        Every random view takes its parameters from ``draws`` under a purpose that starts with
        ``set_id``, so view set ``k`` of an image depends on that image's stream alone.
        """

    @abstractmethod
    def unit_terms(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the named loss terms for ``[G, M, V, ...]`` views, each ``[G]``."""

    def make_views(self, images: torch.Tensor, draws: UniformSource | None = None) -> torch.Tensor:
        """Return the views of each image: ``[B, V, ...]``, or ``[B, K, V, ...]`` when K > 1.

        Augmentation multiplicity (De et al., "Unlocking High-Accuracy Differentially Private
        Image Classification through Scale", arXiv 2204.13650): K independent view sets of the
        same image, whose losses are averaged *inside* the image's unit before clipping, so the
        gradient is less noisy per unit while one image still moves the sum by at most C.
        ``draws`` are the images' own streams (the training loop's); without them the views come
        from torch's global RNG, which is for callers outside DP training only.
        """
        source = draws if draws is not None else GlobalUniforms(len(images))
        k = self.cfg.multiplicity
        if k == 1:
            return self.make_view_set(images, source, "set0")
        return torch.stack([self.make_view_set(images, source, f"set{j}") for j in range(k)], 1)

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-unit loss terms ``{name: [G]}`` for ``[G, M, V, ...]`` or ``[G, M, K, V, ...]``.

        With K view sets, each set forms its own copy of the unit (negatives of a contrastive
        term come from the same set, never another augmentation of the same image) and the K
        copies' terms are averaged, so the unit's loss is still one function of its own images.
        """
        if views.ndim == 6:
            return self.unit_terms(views, mask)
        g, m, k = views.shape[:3]
        folded = views.transpose(1, 2).reshape(g * k, m, *views.shape[3:])
        terms = self.unit_terms(folded, mask.repeat_interleave(k, dim=0))
        return {name: value.reshape(g, k).mean(dim=1) for name, value in terms.items()}

    def weights(self) -> dict[str, float]:
        """Weight of each loss term in the total loss."""
        return {name: 1.0 for name in self.term_names()}

    @abstractmethod
    def term_names(self) -> tuple[str, ...]:
        """Names of the loss terms ``forward`` returns."""

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of the loss terms: the per-unit loss ``[G]``."""
        w = self.weights()
        return sum(
            (w[k] * v for k, v in terms.items()), torch.zeros_like(next(iter(terms.values())))
        )

    def trainable_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters the task trains: the encoder and its own heads, named as in ``self``."""
        modules = {"encoder": self.model.encoder} | {
            f"heads.{h}": self.model.heads[h] for h in self.heads
        }
        for prefix, module in modules.items():
            for name, param in module.named_parameters():
                if param.requires_grad:
                    yield f"model.{prefix}.{name}", param

    def embed(self, views: torch.Tensor) -> torch.Tensor:
        """Encode ``[G, M, V, C, H, W]`` views to ``[G, M, V, D]`` representations."""
        g, m, v = views.shape[:3]
        h: torch.Tensor = self.model.encoder(views.reshape(g * m * v, *views.shape[3:]))
        return h.reshape(g, m, v, -1)


TASKS: dict[str, type[PretextTask]] = {}
"""Registered tasks by ``task.name``: the single list that config validation reads."""


def register_task(name: str) -> Callable[[type[PretextTask]], type[PretextTask]]:
    """Class decorator that registers a task under ``name``.

    A second, different class under a taken name is refused (two files would silently fight
    over it); re-importing the same module re-registers the same class, which is allowed.
    """

    def wrap(cls: type[PretextTask]) -> type[PretextTask]:
        old = TASKS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(f"task name {name!r} is taken by {old.__module__}.{old.__qualname__}")
        TASKS[name] = cls
        return cls

    return wrap


def build_task(
    model: SSLModel, cfg: TaskConfig, augment: AugmentConfig, image_size: int, channels: int
) -> PretextTask:
    """Instantiate the registered task ``cfg.name``."""
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; valid: {sorted(TASKS)}")
    return TASKS[cfg.name](model, cfg, augment, image_size, channels)
