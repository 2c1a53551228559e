"""Encoders (GroupNorm, no BatchNorm) and pretext heads."""

from ssl_fed.models.encoders import ConvGNEncoder, build_encoder
from ssl_fed.models.heads import ProjectionHead, RotationHead, SSLModel, build_model

__all__ = [
    "ConvGNEncoder",
    "ProjectionHead",
    "RotationHead",
    "SSLModel",
    "build_encoder",
    "build_model",
]
