"""Encoders: small GroupNorm CNNs that DP-SGD can train per example.

BatchNorm is excluded by construction: it normalizes each example with its batch-mates'
statistics, so one image's output (and gradient) depends on the others and per-example clipping
no longer bounds one image's influence. GroupNorm normalizes within one example (Wu & He,
"Group Normalization", arXiv 1803.08494) and is what Opacus' ``ModuleValidator`` substitutes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ssl_fed.config import EncoderConfig


def _conv_block(c_in: int, c_out: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1),
        nn.GroupNorm(groups, c_out),
        nn.ReLU(),
    )


class ConvGNEncoder(nn.Module):
    """Three conv blocks with GroupNorm, for inputs from 8x8 to 32x32 (and up to 64x64).

    ``forward`` returns the globally pooled last block ``[B, 4w]``, which the pretext heads read.
    ``features`` is what evaluation and downstream users read: the last block pooled, concatenated
    with the second block average-pooled to 2x2. The last layer of a rotation-trained encoder
    specializes to the pretext task, and an intermediate block transfers better (Gidaris, Singh &
    Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations",
    arXiv 1803.07728: block 2 beats block 3); the 2x2 pooling keeps the coarse layout that small
    images such as digits depend on.

    Parameters
    ----------
    in_channels
        1 (grayscale) or 3 (RGB).
    width
        Channels of the first block; the blocks have ``w, 2w, 4w`` channels.
    norm_groups
        GroupNorm groups per block (must divide ``width``).
    """

    def __init__(self, in_channels: int, width: int = 32, norm_groups: int = 8) -> None:
        super().__init__()
        self.block1 = _conv_block(in_channels, width, stride=1, groups=norm_groups)
        self.block2 = _conv_block(width, 2 * width, stride=2, groups=norm_groups)
        self.block3 = _conv_block(2 * width, 4 * width, stride=2, groups=norm_groups)
        self.out_dim = 4 * width
        self.feature_dim = 4 * width + 4 * 2 * width

    def _blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h2 = self.block2(self.block1(x))
        return h2, self.block3(h2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[B, C, H, W]`` images to ``[B, 4w]`` pooled representations."""
        return self._blocks(x)[1].mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return frozen-evaluation features ``[B, 4w + 8w]`` (block 3 pooled ++ block 2 at 2x2)."""
        h2, h3 = self._blocks(x)
        mid = nn.functional.adaptive_avg_pool2d(h2, 2).flatten(1)
        return torch.cat([h3.mean(dim=(2, 3)), mid], dim=1)


EncoderBuilder = Callable[[EncoderConfig, int], ConvGNEncoder]
"""Builds an encoder from its config and the number of input channels."""

ENCODERS: dict[str, EncoderBuilder] = {}
"""Registered encoders by ``encoder.name``: the single list that config validation reads."""


def register_encoder(name: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    """Register an encoder builder under ``name``."""

    def wrap(builder: EncoderBuilder) -> EncoderBuilder:
        ENCODERS[name] = builder
        return builder

    return wrap


@register_encoder("cnn_gn")
def build_cnn_gn(cfg: EncoderConfig, in_channels: int) -> ConvGNEncoder:
    """Build the 3-block GroupNorm CNN of ``cfg.width`` channels."""
    return ConvGNEncoder(in_channels, width=cfg.width, norm_groups=cfg.norm_groups)


def build_encoder(cfg: EncoderConfig, in_channels: int) -> ConvGNEncoder:
    """Build the registered encoder ``cfg.name``."""
    if cfg.name not in ENCODERS:
        raise ValueError(f"unknown encoder {cfg.name!r}; valid: {sorted(ENCODERS)}")
    return ENCODERS[cfg.name](cfg, in_channels)
