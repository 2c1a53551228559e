"""The in-memory image dataset every loader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageDataset:
    """Images as float32 ``[N, C, H, W]`` in ``[0, 1]``, optional int64 labels ``[N]``.

    Labels are used only by evaluation and by simulation partitioners; they never reach a
    pretext task and never leave a site. ``persons`` (optional, one validated id per image, see
    :mod:`ssl_fed.data.persons`) says which images belong to one person, the privacy unit under
    ``privacy.unit=person``; like labels, person ids never leave a site.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    persons: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        assert self.images.ndim == 4, f"images must be [N,C,H,W], got {tuple(self.images.shape)}"
        assert self.images.dtype == torch.float32
        if self.labels is not None:
            assert self.labels.shape == (self.images.shape[0],)
        if self.persons is not None:
            assert len(self.persons) == self.images.shape[0], "one person id per image"

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
        persons = None
        if self.persons is not None:
            persons = tuple(self.persons[i] for i in index.reshape(-1).tolist())
        return ImageDataset(self.images[index], labels, self.source, persons)


@dataclass(frozen=True)
class DataSplits:
    """A site's training images and, when labels exist, a held-out test split for evaluation."""

    train: ImageDataset
    test: ImageDataset | None
