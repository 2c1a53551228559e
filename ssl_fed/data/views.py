"""Views of a batch of images, batched on tensors, from explicit per-image random parameters.

All views of one image are produced here, before any gradient is taken, and stay in that image's
row ``[B, V, C, H, W]``: the privacy unit is the original image, so its views are summed before
clipping and never become separate examples.

Every random parameter of image ``i``'s view comes from row ``i`` of a :class:`UniformSource`,
never from a generator shared by the batch: under DP the training loop hands in the images' own
keyed streams (:mod:`ssl_fed.train.randomness`), so one image's presence cannot change another
image's view. The geometry (resized crop, small affine, flip) is one affine warp per image
(``grid_sample``); the colour steps use kornia's torchvision-formula functions with per-image
factors.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from kornia import enhance
from torch import nn
from torch.nn import functional as F

from ssl_fed.config import AugmentConfig

_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))


class UniformSource(Protocol):
    """Per-image uniforms in (0, 1): ``source(purpose, count) -> float64 [B, count]``."""

    def __call__(self, purpose: str, count: int) -> torch.Tensor:
        """Return ``count`` uniforms for every image of the batch, named by ``purpose``."""


class GlobalUniforms:
    """Uniforms from torch's global RNG, for callers outside DP training (benchmarks, tests)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def __call__(self, purpose: str, count: int) -> torch.Tensor:
        """``float64 [batch, count]`` uniforms in (0, 1)."""
        return torch.rand(self.batch, count, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)


def rotate_four(images: torch.Tensor) -> torch.Tensor:
    """Return the 4 rotations (0, 90, 180, 270 degrees) of each image: ``[B, 4, C, H, W]``.

    Rotation label ``k`` is the view index ``k`` (RotNet, Gidaris et al., arXiv 1803.07728).
    """
    return torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)


def _between(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * u


def geometry(cfg: AugmentConfig, u: torch.Tensor) -> torch.Tensor:
    """Return sampling matrices ``[B, 2, 3]`` (output -> input, normalized) from ``u [B, 9]``.

    Resized crop (area fraction in ``[crop_scale_min, 1]``, aspect ratio log-uniform in
    ``[3/4, 4/3]``, uniform position), then with prob. 0.5 a rotation up to
    ``max_rotation_deg`` and a shift up to ``max_translate`` of the side, then with prob. 0.5 a
    horizontal flip when ``hflip``: the same family as kornia's RandomResizedCrop, RandomAffine
    and RandomHorizontalFlip, composed into one warp (one interpolation instead of two).
    """
    scale = _between(u[:, 0], cfg.crop_scale_min, 1.0)
    ratio = torch.exp(_between(u[:, 1], *_LOG_RATIO))
    half_w = torch.sqrt(scale * ratio).clamp(max=1.0)
    half_h = torch.sqrt(scale / ratio).clamp(max=1.0)
    centre = torch.stack(
        [_between(u[:, 2], -1.0, 1.0) * (1 - half_w), _between(u[:, 3], -1.0, 1.0) * (1 - half_h)],
        dim=1,
    )
    affine = (u[:, 4] < 0.5).to(u.dtype)
    angle = affine * torch.deg2rad(_between(u[:, 5], -1.0, 1.0) * cfg.max_rotation_deg)
    shift = affine.unsqueeze(1) * 2 * cfg.max_translate * _between(u[:, 6:8], -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse_rotation = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    linear = torch.diag_embed(torch.stack([half_w, half_h], dim=1)) @ inverse_rotation
    flip = torch.ones_like(u[:, :2])
    if cfg.hflip:
        flip[:, 0] = torch.where(u[:, 8] < 0.5, -1.0, 1.0)
    offset = centre - (linear @ shift.unsqueeze(-1)).squeeze(-1)
    return torch.cat([linear * flip.unsqueeze(1), offset.unsqueeze(-1)], dim=2)


def colour(images: torch.Tensor, jitter: float, u: torch.Tensor) -> torch.Tensor:
    """Jitter each image's colour with its own factors (torchvision's formulas), from ``u [B, 5]``.

    With prob. 0.8: brightness and contrast factors in ``[1 - j, 1 + j]``; for RGB also
    saturation in ``[1 - 0.8j, 1 + 0.8j]`` and hue within ``±0.2j`` turns, as kornia's
    ColorJitter is configured here.
    """
    on = (u[:, 0] < 0.8).to(images.dtype)

    def factor(col: int, spread: float) -> torch.Tensor:
        f = _between(u[:, col], max(0.0, 1 - spread), 1 + spread).to(images.dtype)
        return on * f + (1 - on)

    out = enhance.adjust_brightness_accumulative(images, factor(1, jitter))
    out = enhance.adjust_contrast_with_mean_subtraction(out, factor(2, jitter))
    if images.shape[1] == 3:
        out = enhance.adjust_saturation_with_gray_subtraction(out, factor(3, 0.8 * jitter))
        hue = on * _between(u[:, 4], -0.2 * jitter, 0.2 * jitter).to(images.dtype)
        out = enhance.adjust_hue(out.clamp(0.0, 1.0), hue * 2 * math.pi)
    return out.clamp(0.0, 1.0)


class ContrastiveAugment(nn.Module):
    """SimCLR-style random view (Chen et al., arXiv 2002.05709), scaled down for small images.

    Random resized crop, a small random affine, optional horizontal flip (off for digits and text,
    where a mirrored glyph is a different glyph), brightness/contrast jitter (plus saturation and
    hue for RGB) and, with prob. 0.5, Gaussian noise. Parameters per image come from ``draws``
    under ``purpose``, so the same draws give the same view.
    """

    def __init__(self, cfg: AugmentConfig, image_size: int, channels: int) -> None:
        super().__init__()
        self.cfg, self.image_size, self.channels = cfg, image_size, channels

    def forward(
        self, images: torch.Tensor, draws: UniformSource | None = None, purpose: str = "view"
    ) -> torch.Tensor:
        """Return one random view per image, clamped to ``[0, 1]``: ``[B, C, H, W]``."""
        if images.shape[0] == 0:
            return images
        draws = draws if draws is not None else GlobalUniforms(len(images))
        with torch.no_grad():
            theta = geometry(self.cfg, draws(f"{purpose}/geometry", 9)).to(images.dtype)
            size = [len(images), images.shape[1], self.image_size, self.image_size]
            grid = F.affine_grid(theta, size, align_corners=False)
            out = F.grid_sample(images, grid, "bilinear", "zeros", align_corners=False)
            if self.cfg.color_jitter > 0:
                out = colour(
                    out.clamp(0.0, 1.0), self.cfg.color_jitter, draws(f"{purpose}/colour", 5)
                )
            if self.cfg.noise_std > 0:
                pixels = out[0].numel()
                u = draws(f"{purpose}/noise", 1 + pixels)
                on = (u[:, :1] < 0.5).to(images.dtype).view(-1, 1, 1, 1)
                normal = torch.special.ndtri(u[:, 1:]).to(images.dtype).view_as(out)
                out = out + on * self.cfg.noise_std * normal
            return out.clamp_(0.0, 1.0)
