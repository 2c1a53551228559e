"""The in-memory image dataset every loader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """Images as float32 ``[N, C, H, W]`` in ``[0, 1]``, optional int64 labels ``[N]``.

    Labels are used only by evaluation and by simulation partitioners; they never reach a
    pretext task and never leave a site.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str

    def __post_init__(self) -> None:
        assert self.images.ndim == 4, f"images must be [N,C,H,W], got {tuple(self.images.shape)}"
        assert self.images.dtype == torch.float32
        if self.labels is not None:
            assert self.labels.shape == (self.images.shape[0],)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels ``C``."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Side length ``H`` (images are square after loading)."""
        return int(self.images.shape[2])

    def subset(self, index: torch.Tensor) -> ImageDataset:
        """Return the images (and labels) at ``index``."""
        labels = None if self.labels is None else self.labels[index]
        return ImageDataset(self.images[index], labels, self.source)


@dataclass(frozen=True)
class DataSplits:
    """A site's training images and, when labels exist, a held-out test split for evaluation."""

    train: ImageDataset
    test: ImageDataset | None
