"""Per-unit gradients with ``torch.func``: one gradient per clipping unit, all views inside.

Each unit's loss is evaluated on that unit alone (``vmap`` over units of ``grad`` of the unit's
loss), so a unit's gradient cannot depend on another unit by construction. This is the path
Opacus documents for custom per-sample gradients (``grad_sample_mode="no_op"``, PR #492): the
gradients computed here are written to ``p.grad_sample`` and Opacus' ``DPOptimizer`` clips, sums
and noises them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call, grad, vmap

from ssl_fed.tasks.base import PretextTask

Tensors = dict[str, torch.Tensor]


def unit_loss_fn(
    task: PretextTask,
) -> Callable[[Tensors, torch.Tensor, torch.Tensor], tuple[torch.Tensor, Tensors]]:
    """Return ``f(params, unit_views [M,V,...], unit_mask [M]) -> (loss, terms)`` for one unit."""
    buffers = dict(task.named_buffers())

    def loss(
        params: Tensors, views: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, Tensors]:
        terms = functional_call(task, (params, buffers), (views.unsqueeze(0), mask.unsqueeze(0)))
        total = task.combine(terms).sum()
        return total, {k: v.sum().detach() for k, v in terms.items()}

    return loss


def per_unit_gradients(
    task: PretextTask,
    params: Tensors,
    views: torch.Tensor,
    mask: torch.Tensor,
    chunk_size: int | None = None,
) -> tuple[Tensors, Tensors]:
    """Gradients of each unit's loss: ``{name: [G, *param.shape]}`` and terms ``{name: [G]}``.

    ``views`` is ``[G, M, V, C, H, W]`` and ``mask`` ``[G, M]``. Random augmentation happened
    before this call, so the function is deterministic in its inputs.
    """
    fn = vmap(
        grad(unit_loss_fn(task), has_aux=True),
        in_dims=(None, 0, 0),
        chunk_size=chunk_size,
        randomness="error",
    )
    grads, terms = fn(params, views, mask)
    return grads, terms
