"""Bring decoded images to the run's size and channels: what every data format shares."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_fed.data.validation import DataError

_LUMA = (0.299, 0.587, 0.114)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images to ``[N, C, size, size]`` (bilinear).

    Antialiasing is on when shrinking so that thin strokes are averaged rather than aliased
    away; bilinear weights are non-negative, so the ``[0, 1]`` range is kept (clamped against
    rounding).
    """
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < images.shape[-2] or size < images.shape[-1]
    out = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.clamp_(0.0, 1.0)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert ``[N, C, H, W]`` images to ``channels`` (1 or 3); ``None`` keeps them as they are."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor(_LUMA, dtype=images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)
    raise DataError(f"cannot convert {images.shape[1]} channels to data.channels={channels}")
