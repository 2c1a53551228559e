"""Views of a batch of images, made with kornia on tensors (batched, no per-image Python loop).

All views of one image are produced here, before any gradient is taken, and stay in that image's
row ``[B, V, C, H, W]``: the privacy unit is the original image, so its views are summed before
clipping and never become separate examples.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from ssl_fed.config import AugmentConfig


def rotate_four(images: torch.Tensor) -> torch.Tensor:
    """Return the 4 rotations (0, 90, 180, 270 degrees) of each image: ``[B, 4, C, H, W]``.

    Rotation label ``k`` is the view index ``k`` (RotNet, Gidaris et al., arXiv 1803.07728).
    """
    return torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)


class ContrastiveAugment(nn.Module):
    """SimCLR-style random view (Chen et al., arXiv 2002.05709), scaled down for small images.

    Random resized crop, a small random affine, optional horizontal flip (off for digits and text,
    where a mirrored glyph is a different glyph), brightness/contrast jitter (plus saturation and
    hue for RGB) and Gaussian noise.
    """

    def __init__(self, cfg: AugmentConfig, image_size: int, channels: int) -> None:
        super().__init__()
        jitter = cfg.color_jitter
        ops: list[nn.Module] = [
            K.RandomResizedCrop((image_size, image_size), scale=(cfg.crop_scale_min, 1.0)),
            K.RandomAffine(
                degrees=cfg.max_rotation_deg,
                translate=(cfg.max_translate, cfg.max_translate),
                p=0.5,
            ),
        ]
        if cfg.hflip:
            ops.append(K.RandomHorizontalFlip())
        if jitter > 0:
            colour = (0.8 * jitter, 0.2 * jitter) if channels == 3 else (0.0, 0.0)
            ops.append(
                K.ColorJitter(
                    brightness=jitter, contrast=jitter, saturation=colour[0], hue=colour[1], p=0.8
                )
            )
        if cfg.noise_std > 0:
            ops.append(K.RandomGaussianNoise(std=cfg.noise_std, p=0.5))
        self.pipeline = nn.Sequential(*ops)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return one random view per image, clamped to ``[0, 1]``: ``[B, C, H, W]``."""
        if images.shape[0] == 0:
            return images
        with torch.no_grad():
            return self.pipeline(images).clamp_(0.0, 1.0)  # type: ignore[no-any-return]
