"""Encoders (GroupNorm, no BatchNorm), pretext heads, and their registries."""

from ssl_fed.models.encoders import ENCODERS, ConvGNEncoder, build_encoder, register_encoder
from ssl_fed.models.heads import (
    HEADS,
    ProjectionHead,
    RotationHead,
    SSLModel,
    build_model,
    register_head,
)

__all__ = [
    "ENCODERS",
    "HEADS",
    "ConvGNEncoder",
    "ProjectionHead",
    "RotationHead",
    "SSLModel",
    "build_encoder",
    "build_model",
    "register_encoder",
    "register_head",
]
