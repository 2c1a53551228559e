"""Per-unit gradients from one batched forward/backward, summed per unit inside the einsum.

The ``vmap`` method (:mod:`ssl_fed.privacy.grads`) runs the model once per unit. This method runs
it once for the whole batch, as the plain step does, and records each layer's input activations
and output gradients with module hooks, as Opacus' hook-based grad samplers do (Yousefpour et
al., "Opacus", arXiv 2109.12298). The difference is the reduction: Opacus builds one gradient per
*row* and would then need rows summed per image; here the rows of a unit (all views of all its
images) are contracted together in one ``bmm`` per layer, so per-row gradients are never
materialized.

Notes
-----
Why this equals the per-unit gradient. The batch loss is the sum of the unit losses, and unit
``u``'s loss depends only on unit ``u``'s rows (GroupNorm normalizes within a row; the
contrastive logits are formed per unit; padded slots get exactly zero gradient through the
masks). So the gradient of the batch loss that flows through unit ``u``'s rows is the gradient of
unit ``u``'s loss, and a layer's weight gradient restricted to those rows is
``sum_rows grad_out^T · input``. ``tests/privacy/test_grads.py`` checks it against the
batch-size-1 reference. Supported layers: ``Linear``, ``Conv2d`` (groups=1) and affine
``GroupNorm``; any other parameterized layer raises, and the caller falls back to ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

from ssl_fed.tasks.base import PretextTask

Tensors = dict[str, torch.Tensor]
_SUPPORTED = (nn.Linear, nn.Conv2d, nn.GroupNorm)


def _linear(layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int) -> Tensors:
    a = a.reshape(units, -1, a.shape[-1])
    b = b.reshape(units, -1, b.shape[-1])
    out = {"weight": torch.bmm(b.transpose(1, 2), a)}
    if getattr(layer, "bias", None) is not None:
        out["bias"] = b.sum(1)
    return out


def _conv2d(layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int) -> Tensors:
    assert isinstance(layer, nn.Conv2d) and layer.groups == 1
    assert isinstance(layer.padding, tuple), "string padding is resolved by nn.Conv2d"
    cols = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    rows, k, positions = cols.shape
    cols = cols.reshape(units, rows // units, k, positions).transpose(1, 2).reshape(units, k, -1)
    grads = b.reshape(units, rows // units, b.shape[1], -1).transpose(1, 2)
    grads = grads.reshape(units, b.shape[1], -1)
    out = {"weight": torch.bmm(grads, cols.transpose(1, 2)).reshape(units, *layer.weight.shape)}
    if layer.bias is not None:
        out["bias"] = grads.sum(-1)
    return out


def _group_norm(layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int) -> Tensors:
    assert isinstance(layer, nn.GroupNorm)
    normalized = F.group_norm(a, layer.num_groups, eps=layer.eps)
    per_channel = (b * normalized).reshape(units, -1, a.shape[1], *a.shape[2:])
    dims = [1, *range(3, per_channel.ndim)]
    return {
        "weight": per_channel.sum(dim=dims),
        "bias": b.reshape(units, -1, a.shape[1], *a.shape[2:]).sum(dim=dims),
    }


_RULES: dict[type[nn.Module], Callable[[nn.Module, torch.Tensor, torch.Tensor, int], Tensors]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.GroupNorm: _group_norm,
}


def supports_unit_hooks(task: PretextTask) -> bool:
    """Return whether every trainable layer has a rule here (and convolutions are ungrouped)."""
    for module in task.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if not isinstance(module, _SUPPORTED):
            return False
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            return False
    return True


def per_unit_gradients_hooks(
    task: PretextTask, views: torch.Tensor, mask: torch.Tensor
) -> tuple[Tensors, Tensors]:
    """Per-unit gradients ``{name: [G, *shape]}`` and loss terms ``{name: [G]}`` in one pass.

    Same contract as :func:`ssl_fed.privacy.grads.per_unit_gradients`; each hooked layer must be
    called exactly once per forward, on rows ordered unit-major (true of every ssl-fed task).
    """
    units = views.shape[0]
    trainable = dict(task.trainable_named_parameters())
    owners = {
        name: module
        for name, module in task.named_modules()
        if any(f"{name}.{p}" in trainable for p, _ in module.named_parameters(recurse=False))
    }
    inputs: dict[str, torch.Tensor] = {}
    results: Tensors = {}
    handles: list[RemovableHandle] = []

    def capture(name: str) -> Callable[..., None]:
        def forward_hook(module: nn.Module, args: tuple[torch.Tensor, ...], _: object) -> None:
            if name in inputs:
                raise RuntimeError(f"layer {name} ran twice in one forward; use the vmap method")
            inputs[name] = args[0].detach()

        return forward_hook

    def collect(name: str) -> Callable[..., None]:
        def backward_hook(module: nn.Module, _: object, grad_out: tuple[torch.Tensor, ...]) -> None:
            rule = _RULES[type(module)]
            for pname, value in rule(module, inputs[name], grad_out[0].detach(), units).items():
                results[f"{name}.{pname}"] = value

        return backward_hook

    for name, module in owners.items():
        handles.append(module.register_forward_hook(capture(name)))
        handles.append(module.register_full_backward_hook(collect(name)))
    try:
        terms = task(views, mask)
        total = task.combine(terms).sum()
        params = list(trainable.values())
        torch.autograd.grad(total, params, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    grads = {n: results.get(n, torch.zeros(units, *p.shape)) for n, p in trainable.items()}
    return grads, {k: v.detach() for k, v in terms.items()}
