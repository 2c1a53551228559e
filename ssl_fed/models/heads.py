"""Pretext heads, the head registry, and the model bundle that a site trains.

Heads are separate modules from the encoder: only the encoder is federated by default, and the
heads stay at the site. The model holds its heads in one dict keyed by head name
(:attr:`SSLModel.heads`), and everything that handles heads (federation packing, the site's
kept heads, the warm start, export) iterates that dict, so a task that registers a new head
(:func:`register_head`) gets it trained, federated (``aggregation.share_heads``) and kept
across rounds without naming it anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


HeadBuilder = Callable[[int, EncoderConfig], nn.Module]
"""Builds a head from the encoder's output width and the encoder config."""

HEADS: dict[str, HeadBuilder] = {}
"""Registered heads by name, in registration order (the order they are built and federated)."""


def register_head(name: str) -> Callable[[HeadBuilder], HeadBuilder]:
    """Register a head builder under ``name`` (a task file registers its own heads).

    Every model gets every registered head, built in registration order: the built-in heads
    first, so their initialisation (and every result) does not depend on which other tasks exist.
    """

    def wrap(builder: HeadBuilder) -> HeadBuilder:
        HEADS[name] = builder
        return builder

    return wrap


@register_head("rotation")
def build_rotation_head(in_dim: int, cfg: EncoderConfig) -> nn.Module:
    """RotNet's 4-way classifier."""
    return RotationHead(in_dim)


@register_head("projection")
def build_projection_head(in_dim: int, cfg: EncoderConfig) -> nn.Module:
    """SimCLR's projection MLP (``proj_hidden`` -> ``proj_dim``)."""
    return ProjectionHead(in_dim, cfg.proj_hidden, cfg.proj_dim)


class SSLModel(nn.Module):
    """The encoder plus the pretext heads, keyed by head name in :attr:`heads`.

    Parameter names are ``encoder.*`` and ``heads.<head>.*``. A ``state_dict`` saved before the
    heads moved into the dict (keys ``rotation.*``, ``projection.*``) still loads: a load hook
    renames a key that starts with a head's name to ``heads.<head>.*``.
    """

    def __init__(self, encoder: ConvGNEncoder, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(dict(heads))
        self._register_load_state_dict_pre_hook(self._rename_legacy_head_keys)  # type: ignore[no-untyped-call]

    def _rename_legacy_head_keys(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        for key in list(state_dict):
            head = key[len(prefix) :].split(".", 1)[0]
            if key.startswith(prefix) and head in self.heads:
                state_dict[f"{prefix}heads.{key[len(prefix) :]}"] = state_dict.pop(key)

    def head_prefix(self, pattern: str) -> str:
        """Map a parameter-name prefix written with a bare head name (``rotation``) to its name.

        ``privacy.trainable`` predates the head dict and names heads bare; ``encoder.*`` and
        ``heads.*`` prefixes are returned unchanged.
        """
        return f"heads.{pattern}" if pattern.split(".", 1)[0] in self.heads else pattern


def build_model(cfg: EncoderConfig, in_channels: int, *, seed: int | None = None) -> SSLModel:
    """Build the encoder and every registered head (built-in heads first).

    The tasks package is imported first, because importing it registers the heads of every task
    (those in ``ssl_fed/tasks/`` and the plugins, :mod:`ssl_fed.plugins`); a server, which never
    builds a task, thus builds the same heads as its sites.

    ``seed`` makes the initial weights a function of that (public) number alone, drawn on a
    forked RNG so the caller's global stream is untouched: a site's local heads and a
    ``train-local`` model then start identically on every run and in every Ray worker, which
    non-private runs need to reproduce. An initialization reads no data, so a public seed for
    it reveals nothing about any image (DESIGN §1 keeps *data-dependent* randomness secret).
    """
    import ssl_fed.tasks  # noqa: F401  (registers every task's heads)

    if seed is None:
        return _build(cfg, in_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(cfg, in_channels)


def _build(cfg: EncoderConfig, in_channels: int) -> SSLModel:
    encoder = build_encoder(cfg, in_channels)
    return SSLModel(encoder, {name: build(encoder.out_dim, cfg) for name, build in HEADS.items()})
