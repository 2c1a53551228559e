"""The federated arrays of a model: which tensors leave a site, in which order, as deltas.

Only the encoder is federated by default; the pretext heads stay at the site unless
``aggregation.share_heads`` is set. Flower's legacy ``Parameters`` carry an ordered list of arrays
without names, so the order is fixed here, once, from ``state_dict`` order.

Sites send *deltas* (new minus received weights) rather than weights: SecAgg+ clips every value to
``±clipping_range`` and quantizes it to ``quantization_range`` levels (Bell et al., CCS 2020,
arXiv 2002.04156, §4 via Flower's implementation), so a small range that fits the deltas keeps the
quantization error far below the update itself, which a range that fit raw weights could not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch
    from torch import nn

NDArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ArraySpec:
    """Name, shape and dtype of one federated array (what the guard lets leave a site)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def federated_modules(share_heads: bool) -> tuple[str, ...]:
    """Sub-modules of :class:`~ssl_fed.models.SSLModel` whose weights are federated."""
    return ("encoder", "rotation", "projection") if share_heads else ("encoder",)


def federated_state(model: nn.Module, share_heads: bool) -> dict[str, torch.Tensor]:
    """Return the federated tensors of ``model``, named ``<module>.<param>``, in a fixed order."""
    state: dict[str, torch.Tensor] = {}
    for prefix in federated_modules(share_heads):
        for key, value in getattr(model, prefix).state_dict().items():
            state[f"{prefix}.{key}"] = value.detach()
    return state


def array_specs(model: nn.Module, share_heads: bool) -> list[ArraySpec]:
    """Return the declared update: one :class:`ArraySpec` per federated tensor."""
    return [
        ArraySpec(name, tuple(t.shape), "float32")
        for name, t in federated_state(model, share_heads).items()
    ]


def state_to_arrays(state: dict[str, torch.Tensor]) -> list[NDArray]:
    """Tensors -> float32 numpy arrays, in ``state`` order."""
    return [t.detach().cpu().numpy().astype(np.float32, copy=True) for t in state.values()]


def load_arrays(model: nn.Module, arrays: list[NDArray], share_heads: bool) -> None:
    """Load federated ``arrays`` (in :func:`federated_state` order) into ``model`` in place."""
    import torch

    names = list(federated_state(model, share_heads))
    if len(names) != len(arrays):
        raise ValueError(f"expected {len(names)} federated arrays, got {len(arrays)}")
    for prefix in federated_modules(share_heads):
        module = getattr(model, prefix)
        own = {n: a for n, a in zip(names, arrays, strict=True) if n.startswith(prefix + ".")}
        module.load_state_dict(
            {
                n[len(prefix) + 1 :]: torch.as_tensor(np.asarray(a, np.float32))
                for n, a in own.items()
            }
        )


def subtract_arrays(new: list[NDArray], old: list[NDArray]) -> list[NDArray]:
    """Return the update a site sends: ``new - old`` per array (float32)."""
    return [np.asarray(n - o, dtype=np.float32) for n, o in zip(new, old, strict=True)]


def add_arrays(base: list[NDArray], delta: list[NDArray]) -> list[NDArray]:
    """Return the next global model: ``base + delta`` per array (float32)."""
    return [np.asarray(b + d, dtype=np.float32) for b, d in zip(base, delta, strict=True)]


def mean_arrays(updates: list[list[NDArray]]) -> list[NDArray]:
    """Uniform mean of several updates (every site has weight 1)."""
    if not updates:
        raise ValueError("no updates to average")
    return [
        np.asarray(np.mean(np.stack(parts), axis=0), dtype=np.float32)
        for parts in zip(*updates, strict=True)
    ]


def max_abs(arrays: list[NDArray]) -> float:
    """Largest absolute value over all arrays (0 for none)."""
    return max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
