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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ssl_fed.models import SSLModel

NDArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ArraySpec:
    """Name, shape and dtype of one federated array (what the guard lets leave a site)."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def federated_modules(model: SSLModel, share_heads: bool) -> dict[str, nn.Module]:
    """Sub-modules of ``model`` whose weights are federated, by name prefix, in a fixed order.

    The encoder, then (with ``share_heads``) every head of ``model.heads`` in its order; a head
    is named by its bare head name (``rotation.fc.weight``), as before the heads moved into a
    dict, so checkpoints written earlier still load.
    """
    modules: dict[str, nn.Module] = {"encoder": model.encoder}
    if share_heads:
        modules |= dict(model.heads.items())
    return modules


def federated_state(model: SSLModel, share_heads: bool) -> dict[str, torch.Tensor]:
    """Return the federated tensors of ``model``, named ``<module>.<param>``, in a fixed order."""
    return _prefixed_state(federated_modules(model, share_heads))


def head_state(model: SSLModel) -> dict[str, torch.Tensor]:
    """Return the tensors of every head, named ``<head>.<param>``: what a site keeps at home.

    A site that does not share its heads keeps this between rounds and reloads it with
    :func:`load_head_state`; iterating ``model.heads`` keeps a new task's head too.
    """
    return _prefixed_state(dict(model.heads.items()))


def load_head_state(model: SSLModel, state: Mapping[str, torch.Tensor]) -> None:
    """Load :func:`head_state` output into ``model`` (heads missing from ``state`` are kept)."""
    for head, module in model.heads.items():
        own = {k[len(head) + 1 :]: v for k, v in state.items() if k.startswith(head + ".")}
        if own:
            module.load_state_dict(own)


def _prefixed_state(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            state[f"{prefix}.{key}"] = value.detach()
    return state


def array_specs(model: SSLModel, share_heads: bool) -> list[ArraySpec]:
    """Return the declared update: one :class:`ArraySpec` per federated tensor."""
    return [
        ArraySpec(name, tuple(t.shape), "float32")
        for name, t in federated_state(model, share_heads).items()
    ]


def state_to_arrays(state: dict[str, torch.Tensor]) -> list[NDArray]:
    """Tensors -> float32 numpy arrays, in ``state`` order."""
    return [t.detach().cpu().numpy().astype(np.float32, copy=True) for t in state.values()]


def load_arrays(model: SSLModel, arrays: list[NDArray], share_heads: bool) -> None:
    """Load federated ``arrays`` (in :func:`federated_state` order) into ``model`` in place."""
    names = list(federated_state(model, share_heads))
    if len(names) != len(arrays):
        raise ValueError(f"expected {len(names)} federated arrays, got {len(arrays)}")
    load_named_arrays(model, names, arrays, share_heads)


def load_named_arrays(
    model: SSLModel, names: list[str], arrays: list[NDArray], share_heads: bool
) -> None:
    """Load the arrays called ``names`` into the federated modules they belong to.

    Every federated module must find all its tensors; arrays of other modules are ignored (so
    export can read the encoder out of a checkpoint that also holds heads).
    """
    import torch

    for prefix, module in federated_modules(model, share_heads).items():
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
