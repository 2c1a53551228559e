"""Pretext heads and the model bundle that a site trains.

Heads are separate modules from the encoder: only the encoder is federated by default, and the
heads stay at the site.
"""

from __future__ import annotations

import torch
from torch import nn

from ssl_fed.config import EncoderConfig
from ssl_fed.models.encoders import ConvGNEncoder, build_encoder


class RotationHead(nn.Module):
    """A linear 4-way classifier over the encoder output (0, 90, 180, 270 degrees)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, 4)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Return rotation logits ``[B, 4]``."""
        return self.fc(h)  # type: ignore[no-any-return]


class ProjectionHead(nn.Module):
    """SimCLR's MLP projection head without BatchNorm (Chen et al., arXiv 2002.05709, §2.1).

    The contrastive loss is computed on ``g(h)`` rather than ``h``; SimCLR found this improves the
    representation ``h``. BatchNorm is left out because it couples examples (see encoders.py).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Return projections ``[B, out_dim]``."""
        return self.net(h)  # type: ignore[no-any-return]


class SSLModel(nn.Module):
    """The encoder plus both pretext heads; parameter names start with ``encoder.`` etc."""

    def __init__(self, encoder: ConvGNEncoder, rotation: RotationHead, projection: ProjectionHead):
        super().__init__()
        self.encoder = encoder
        self.rotation = rotation
        self.projection = projection


def build_model(cfg: EncoderConfig, in_channels: int) -> SSLModel:
    """Build the encoder and its heads from the config."""
    encoder = build_encoder(cfg, in_channels)
    return SSLModel(
        encoder,
        RotationHead(encoder.out_dim),
        ProjectionHead(encoder.out_dim, cfg.proj_hidden, cfg.proj_dim),
    )
