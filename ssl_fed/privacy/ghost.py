"""Clipped per-unit gradient sums without per-unit gradients: ghost norms and book-keeping.

``vmap`` (:mod:`ssl_fed.privacy.grads`) and ``hooks`` (:mod:`ssl_fed.privacy.unit_hooks`) build
one full gradient per clipping unit and hand it to Opacus, which takes its norm, scales it and
sums. Only the norms and the clipped *sum* are released, so this module computes just those,
from one forward and one backward that stops at each layer's output (no weight gradients):

* Ghost norm (Li et al., "Large Language Models Can Be Strong Differentially Private Learners",
  arXiv 2110.05679, §4): a linear layer's gradient over rows ``r`` is ``Σ_r g_r a_rᵀ`` (``a`` its
  input, ``g`` the gradient at its output), so a unit's squared norm is
  ``Σ_{r,r' ∈ unit} ⟨a_r, a_r'⟩⟨g_r, g_r'⟩``. A unit here is several rows (all views of all its
  images); a convolution's rows are its unfolded positions times the unit's rows. Cost ``T²(d+p)``
  per unit for ``T`` rows, ``d`` inputs and ``p`` outputs.
* Mixed ghost clipping (Bu et al., "Differentially Private Optimization on Large Model at Small
  Cost", arXiv 2210.00038, §3): per layer, whichever is cheaper of the ghost norm and the direct
  per-unit gradient (cost ``T·d·p``). For small images the early convolutions (many positions,
  few channels) go direct and the heads go ghost. GroupNorm affine parameters and biases are
  ``p`` numbers per unit and always go direct.
* Book-keeping (Bu et al., §4): the clipped sum is ``Σ_r f_{u(r)} g_r a_rᵀ``, ``f_u = min(1,
  C/(‖g_u‖+1e-6))`` (Opacus' factor), from the stored tensors: no second backward.

Notes
-----
Guarantee: the released sum equals ``Σ_u f_u ∇ℓ_u`` of the reference methods (tests check both
the norms and the sums against ``vmap`` within 1e-5), so each unit still moves the sum by at most
C and the DP-SGD guarantee of :class:`~ssl_fed.privacy.dpsgd.DPSGDStep` is unchanged. Why a
layer's rows can be split per unit: the same argument as :mod:`ssl_fed.privacy.unit_hooks`
(GroupNorm normalizes within a row, every loss term is formed per unit, padded slots get exactly
zero output gradient), with rows ordered unit-major. Anything this module cannot prove it handles
(a parameterized layer without a rule, a layer run twice in one forward, rows not divisible into
units) raises :class:`GhostUnsupported` and the step falls back to ``vmap``; it is never silently
approximated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ssl_fed.tasks.base import PretextTask

Tensors = dict[str, torch.Tensor]
Clip = Callable[[torch.Tensor], Tensors]
"""Maps per-unit clip factors ``[G]`` to a layer's clipped sums ``{param: tensor}``."""
ROWS_PER_CALL = 8
"""Units of at least this many rows get one convolution-gradient call each (measured on CPU)."""
CLIP_EPS = 1e-6
"""Opacus' ``DPOptimizer.clip_and_accumulate`` factor is ``C / (norm + 1e-6)``, clamped at 1."""


class GhostUnsupported(RuntimeError):
    """The model or batch has a shape this module does not handle; the step uses ``vmap``."""


def _direct(per_unit: Tensors) -> tuple[torch.Tensor, Clip]:
    """Per-unit gradients ``{param: [G, ...]}`` kept as they are (cheap ones, or cheaper ones)."""
    sq = sum(g.flatten(1).pow(2).sum(1) for g in per_unit.values())
    assert isinstance(sq, torch.Tensor)

    def clip(f: torch.Tensor) -> Tensors:
        return {n: torch.einsum("g,g...->...", f, g) for n, g in per_unit.items()}

    return sq, clip


def use_ghost_norm(rows: int, d: int, p: int) -> bool:
    """Bu et al. 2022's layer-wise choice: ghost norm iff ``T²(d+p) < T·d·p`` per unit."""
    return rows * (d + p) < d * p


def _weight(a: torch.Tensor, b: torch.Tensor, shape: torch.Size) -> tuple[torch.Tensor, Clip]:
    """Squared norms and clipped sum of ``Σ_t b_t a_tᵀ`` per unit (``a``: G,T,d; ``b``: G,T,p)."""
    d, p = a.shape[2], b.shape[2]
    if not use_ghost_norm(a.shape[1], d, p):
        per = torch.bmm(b.transpose(1, 2), a)
        return _direct({"weight": per.reshape(-1, *shape)})
    sq = (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(b, b.transpose(1, 2))).sum((1, 2))

    def clip(f: torch.Tensor) -> Tensors:
        scaled = (b * f[:, None, None]).reshape(-1, p)
        return {"weight": (scaled.t() @ a.reshape(-1, d)).reshape(shape)}

    return sq, clip


def _join(parts: list[tuple[torch.Tensor, Clip]]) -> tuple[torch.Tensor, Clip]:
    sq = torch.stack([s for s, _ in parts]).sum(0)

    def clip(f: torch.Tensor) -> Tensors:
        return {k: v for _, c in parts for k, v in c(f).items()}

    return sq, clip


def _linear(
    layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int, want: set[str]
) -> tuple[torch.Tensor, Clip]:
    assert isinstance(layer, nn.Linear)
    a = a.reshape(units, -1, a.shape[-1])
    b = b.reshape(units, -1, b.shape[-1])
    parts = []
    if "weight" in want:
        parts.append(_weight(a, b, layer.weight.shape))
    if "bias" in want:
        parts.append(_direct({"bias": b.sum(1)}))
    return _join(parts)


def _conv2d(
    layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int, want: set[str]
) -> tuple[torch.Tensor, Clip]:
    assert isinstance(layer, nn.Conv2d) and isinstance(layer.padding, tuple)
    rows, p = b.shape[0], b.shape[1]
    parts = []
    if "weight" in want:
        d, positions = layer.weight[0].numel(), b.shape[2:].numel()
        if use_ghost_norm(rows // units * positions, d, p):
            parts.append(_conv_ghost(layer, a, b, units))
        else:
            parts.append(_direct({"weight": _conv_per_unit(layer, a, b, units)}))
    if "bias" in want:
        per_row = b.reshape(rows, p, -1).sum(-1)
        parts.append(_direct({"bias": per_row.reshape(units, -1, p).sum(1)}))
    return _join(parts)


def _conv_ghost(
    layer: nn.Conv2d, a: torch.Tensor, b: torch.Tensor, units: int
) -> tuple[torch.Tensor, Clip]:
    """Ghost norm of a convolution: a unit's rows are its views times the output positions."""
    assert isinstance(layer.padding, tuple)
    rows, p = b.shape[0], b.shape[1]
    cols = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    d = cols.shape[1]
    cols = cols.reshape(units, rows // units, d, -1).transpose(2, 3).reshape(units, -1, d)
    b = b.reshape(units, rows // units, p, -1).transpose(2, 3).reshape(units, -1, p)
    return _weight(cols, b, layer.weight.shape)


def _conv_per_unit(layer: nn.Conv2d, a: torch.Tensor, b: torch.Tensor, units: int) -> torch.Tensor:
    """Per-unit weight gradients ``[G, *weight.shape]`` on the plain step's backward kernel.

    Units of many rows (groups): one weight-gradient call per unit. Units of few rows (one
    image): the units stacked along channels make one convolution with G groups (Rochette et al.,
    "Efficient Per-Example Gradient Computations in CNNs", arXiv 1912.06015).
    """
    assert isinstance(layer.padding, tuple)
    rows, c_in, c_out = a.shape[0], a.shape[1], b.shape[1]
    per = rows // units
    conv = (layer.stride, layer.padding, layer.dilation, False, [0, 0])
    if per >= ROWS_PER_CALL:
        w = layer.weight.detach()
        grads = [
            torch.ops.aten.convolution_backward(
                b[u * per : (u + 1) * per],
                a[u * per : (u + 1) * per],
                w,
                None,
                *conv,
                1,
                [False, True, False],
            )[1]
            for u in range(units)
        ]
        return torch.stack(grads)
    x = a.reshape(units, per, c_in, *a.shape[2:]).transpose(0, 1).reshape(per, -1, *a.shape[2:])
    g = b.reshape(units, per, c_out, *b.shape[2:]).transpose(0, 1).reshape(per, -1, *b.shape[2:])
    w = layer.weight.new_empty(units * c_out, *layer.weight.shape[1:])  # shape only
    _, grad_w, _ = torch.ops.aten.convolution_backward(
        g, x, w, None, *conv, units, [False, True, False]
    )
    out: torch.Tensor = grad_w.reshape(units, *layer.weight.shape)
    return out


def _group_norm(
    layer: nn.Module, a: torch.Tensor, b: torch.Tensor, units: int, want: set[str]
) -> tuple[torch.Tensor, Clip]:
    assert isinstance(layer, nn.GroupNorm)
    rows, channels = a.shape[0], a.shape[1]
    per_unit: Tensors = {}
    if "weight" in want:
        normalized = F.group_norm(a, layer.num_groups, eps=layer.eps)
        per_row = (b * normalized).reshape(rows, channels, -1).sum(-1)
        per_unit["weight"] = per_row.reshape(units, -1, channels).sum(1)
    if "bias" in want:
        per_row = b.reshape(rows, channels, -1).sum(-1)
        per_unit["bias"] = per_row.reshape(units, -1, channels).sum(1)
    return _direct(per_unit)


Rule = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, set[str]], tuple[torch.Tensor, Clip]]
_RULES: dict[type[nn.Module], Rule] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.GroupNorm: _group_norm,
}


def _owners(task: PretextTask) -> dict[str, tuple[nn.Module, dict[str, str]]]:
    """Modules that own trainable parameters: ``{module name: (module, {local: full name})}``."""
    trainable = dict(task.trainable_named_parameters())
    owners: dict[str, tuple[nn.Module, dict[str, str]]] = {}
    for name, module in task.named_modules():
        own = {
            local: f"{name}.{local}"
            for local, _ in module.named_parameters(recurse=False)
            if f"{name}.{local}" in trainable
        }
        if own:
            owners[name] = (module, own)
    return owners


def ghost_unsupported_reason(task: PretextTask) -> str | None:
    """Why ``task`` cannot use ghost clipping (``None`` when every trainable layer has a rule)."""
    seen: set[int] = set()
    for name, (module, own) in _owners(task).items():
        if type(module) not in _RULES:
            return f"layer {name} ({type(module).__name__}) has no ghost-clipping rule"
        if isinstance(module, nn.Conv2d) and (
            module.groups != 1
            or module.padding_mode != "zeros"
            or not isinstance(module.padding, tuple)
        ):
            return f"convolution {name} is grouped, non-zero-padded or string-padded"
        params = {id(getattr(module, local)) for local in own}
        if params & seen:
            return f"layer {name} shares a parameter with another layer"
        seen |= params
    return None


def _forward(
    task: PretextTask,
    owners: dict[str, tuple[nn.Module, dict[str, str]]],
    views: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[Tensors, Tensors, Tensors]:
    """Run the task once, recording each owner's input (detached) and output (in the graph)."""
    inputs: Tensors = {}
    outputs: Tensors = {}

    def capture(name: str) -> Callable[..., None]:
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if name in inputs:
                raise GhostUnsupported(f"layer {name} ran twice in one forward")
            inputs[name], outputs[name] = args[0].detach(), out

        return hook

    handles = [m.register_forward_hook(capture(n)) for n, (m, _) in owners.items()]
    try:
        terms = task(views, mask)
    finally:
        for handle in handles:
            handle.remove()
    return terms, inputs, outputs


def clip_rows(rows: Tensors, max_grad_norm: float) -> tuple[Tensors, torch.Tensor]:
    """Clip explicit gradient rows ``{name: [k, ...]}`` (the audit's canaries); sum and norms."""
    sq, clip = _direct(rows)
    norms = sq.sqrt()
    return clip((max_grad_norm / (norms + CLIP_EPS)).clamp(max=1.0)), norms


def ghost_clipped_sum(
    task: PretextTask, views: torch.Tensor, mask: torch.Tensor, max_grad_norm: float
) -> tuple[Tensors, Tensors, torch.Tensor]:
    """Return ``Σ_u min(1, C/(‖∇ℓ_u‖+1e-6)) ∇ℓ_u`` per parameter, terms ``{name: [G]}`` and norms.

    Same units as the reference methods: ``views`` ``[G, M, V, ...]`` (or ``[G, M, K, V, ...]``)
    and ``mask`` ``[G, M]``, ``G >= 1``. Raises :class:`GhostUnsupported` (nothing changed) for a
    batch this module does not handle.
    """
    units = views.shape[0]
    owners = _owners(task)
    terms, inputs, outputs = _forward(task, owners, views, mask)
    total = task.combine(terms).sum()
    names = list(outputs)
    out_grads = torch.autograd.grad(total, [outputs[n] for n in names], allow_unused=True)
    parts: list[tuple[torch.Tensor, Clip, dict[str, str]]] = []
    for name, g in zip(names, out_grads, strict=True):
        module, own = owners[name]
        a = inputs[name]
        if g is None:
            continue
        rows = a.shape[0] if not isinstance(module, nn.Linear) else a.numel() // a.shape[-1]
        if rows % units:
            raise GhostUnsupported(f"layer {name}: {rows} rows do not split into {units} units")
        sq, clip = _RULES[type(module)](module, a, g.detach(), units, set(own))
        parts.append((sq, clip, own))
    sq_total = sum((sq for sq, _, _ in parts), torch.zeros(units, dtype=views.dtype))
    norms = sq_total.clamp(min=0).sqrt()
    factor = (max_grad_norm / (norms + CLIP_EPS)).clamp(max=1.0)
    summed = {n: torch.zeros_like(p) for n, p in task.trainable_named_parameters()}
    for _, clip, own in parts:
        for local, value in clip(factor).items():
            summed[own[local]] = value
    return summed, {k: v.detach() for k, v in terms.items()}, norms
