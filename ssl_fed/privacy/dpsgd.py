"""Gradient steps: the plain step, and the DP-SGD step that wraps it (clip per unit, add noise).

Both steps take a batch already cut into units (``[G, M, V, C, H, W]`` views and a ``[G, M]``
mask) and normalize by the same public constant, the *expected* batch size, so the two differ
only by clipping and noise. With ``max_grad_norm = inf`` and ``σ = 0`` the private step equals
the plain step.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable
from typing import Protocol

import torch
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from opacus.validators.errors import UnsupportedModuleError
from torch import nn

from ssl_fed.privacy.ghost import GhostUnsupported, clip_rows, ghost_clipped_sum
from ssl_fed.privacy.ghost import ghost_unsupported_reason as ghost_reason
from ssl_fed.privacy.grads import per_unit_gradients
from ssl_fed.privacy.unit_hooks import per_unit_gradients_hooks, supports_unit_hooks
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan


def noise_generator() -> torch.Generator:
    """Return a generator for DP noise seeded from OS entropy (``secrets``), never from config.

    Noise that anyone can regenerate from a public seed can be subtracted, which voids the
    guarantee. Opacus' ``secure_mode`` would use a CSPRNG (torchcsprng), which is not available
    here; a 63-bit OS-entropy seed for torch's Philox/MT generator is the documented compromise.
    """
    return torch.Generator().manual_seed(secrets.randbits(63))


class PrivacyError(ValueError):
    """A training setup whose privacy cannot be stated; nothing is trained."""


class GradientStep(Protocol):
    """One optimizer step on a batch of units; returns the summed loss terms of the batch."""

    def __call__(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """Take the step."""


class PlainStep:
    """Non-private step: backprop of ``sum(unit losses) / expected_batch_size``."""

    def __init__(
        self, task: PretextTask, optimizer: torch.optim.Optimizer, expected_batch_size: int
    ) -> None:
        self.task = task
        self.optimizer = optimizer
        self.expected_batch_size = expected_batch_size

    def __call__(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """Take one plain step (an empty batch leaves the model unchanged)."""
        self.optimizer.zero_grad(set_to_none=True)
        if views.shape[0] == 0:
            return {name: 0.0 for name in self.task.term_names()}
        terms = self.task(views, mask)
        loss = self.task.combine(terms).sum() / self.expected_batch_size
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        return {k: float(v.detach().sum()) for k, v in terms.items()}


class DPSGDStep:
    """DP-SGD step (Abadi et al., arXiv 1607.00133) over clipping units, via Opacus' DPOptimizer.

    Per-unit gradients come from one batched pass with unit-summing hooks (``method="hooks"``,
    :mod:`ssl_fed.privacy.unit_hooks`) or from ``torch.func`` over units (``method="vmap"``,
    :mod:`ssl_fed.privacy.grads`), and are handed to ``DPOptimizer`` as ``p.grad_sample``
    (Opacus' ``no_op`` contract), which clips each unit to C, sums, adds
    N(0, (sensitivity·σ·C)²) and divides by the expected batch size. ``method="ghost"``
    (:mod:`ssl_fed.privacy.ghost`) computes the clipped sum itself from per-unit norms (ghost
    clipping with book-keeping) and hands it to the same optimizer's ``add_noise``, then
    its division by the expected batch size: same factor, same generator and std. A model or batch
    ghost does not handle falls back to ``vmap`` with a warning naming the reason.

    Notes
    -----
    Guarantee: each call is one Poisson-subsampled Gaussian mechanism with noise multiplier σ
    with respect to adding or removing one image, provided the batch was Poisson-sampled at the
    rate the ledger records and ``sensitivity`` (in units of C) bounds what one image can change
    in the sum of clipped unit gradients (1 for per-image units, 2 for random groups). An empty
    batch still takes a noise-only step: skipping it would reveal that the batch was empty.

    ``extra_units`` is the audit's seam (:mod:`ssl_fed.audit`): when set, it returns extra
    gradient rows ``{name: [k, *param.shape]}`` that are appended to this step's units and then
    clipped, summed and noised exactly like them, so a white-box canary is a real unit of the
    step. It is ``None`` in training; it never changes σ, C, the sensitivity or the ledger.
    """

    extra_units: Callable[[], dict[str, torch.Tensor]] | None = None

    def __init__(
        self,
        task: PretextTask,
        optimizer: torch.optim.Optimizer,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        sensitivity: float,
        expected_batch_size: int,
        chunk_size: int | None = None,
        method: str = "vmap",
    ) -> None:
        if method not in ("ghost", "hooks", "vmap"):
            raise ValueError(
                f"unknown per-unit gradient method {method!r}; valid: ghost, hooks, vmap"
            )
        if method == "hooks" and not supports_unit_hooks(task):
            method = "vmap"
        self.method = method
        self.task = task
        self.max_grad_norm = max_grad_norm
        if method == "ghost" and (reason := ghost_reason(task)) is not None:
            self._fall_back(reason)
        self.named = dict(task.trainable_named_parameters())
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=noise_multiplier * sensitivity,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=noise_generator(),
        )
        self.chunk_size = chunk_size

    def __call__(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """Take one private step and return the (unclipped) summed loss terms of the batch."""
        if self.method == "ghost":
            try:
                return self._ghost_step(views, mask)
            except GhostUnsupported as err:
                self._fall_back(str(err))
        units = views.shape[0]
        if units == 0:
            grads = {n: torch.zeros(0, *p.shape) for n, p in self.named.items()}
            terms = {name: 0.0 for name in self.task.term_names()}
        else:
            grads, unit_terms = self._per_unit(views, mask)
            terms = {k: float(v.sum()) for k, v in unit_terms.items()}
        if self.extra_units is not None:
            extra = self.extra_units()
            grads = {n: torch.cat([g, extra[n].to(g.dtype)]) for n, g in grads.items()}
            units += next(iter(extra.values())).shape[0]
        for name, param in self.named.items():
            assert grads[name].shape[0] == units, "one gradient row per clipping unit"
            param.grad_sample = grads[name]  # type: ignore[attr-defined]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return terms

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"privacy.grad_method=ghost: {reason}; using vmap", stacklevel=3)
        self.method = "vmap"

    def _ghost_step(self, views: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        """Clipped sum by ghost norms, then Opacus' own noise, scaling and step."""
        if views.shape[0] == 0:
            summed = {n: torch.zeros_like(p) for n, p in self.named.items()}
            terms = {name: 0.0 for name in self.task.term_names()}
        else:
            summed, unit_terms, _ = ghost_clipped_sum(self.task, views, mask, self.max_grad_norm)
            terms = {k: float(v.sum()) for k, v in unit_terms.items()}
        if self.extra_units is not None:
            extra, _ = clip_rows(self.extra_units(), self.max_grad_norm)
            summed = {n: s + extra[n].to(s.dtype) for n, s in summed.items()}
        for name, param in self.named.items():
            param.summed_grad = summed[name]  # type: ignore[attr-defined]
        self.optimizer.add_noise()
        for param in self.optimizer.params:  # scale_grad's "mean" with one iteration
            assert param.grad is not None
            param.grad /= self.optimizer.expected_batch_size
        if self.optimizer.step_hook is not None:  # as Opacus' pre_step: the audit observes here
            self.optimizer.step_hook(self.optimizer)
        self.optimizer.original_optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return terms

    def _per_unit(
        self, views: torch.Tensor, mask: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self.method == "hooks":
            return per_unit_gradients_hooks(self.task, views, mask)
        params = {n: p.detach() for n, p in self.named.items()}
        return per_unit_gradients(self.task, params, views, mask, self.chunk_size)


def check_private_setup(model: nn.Module, plan: UnitPlan, *, delta: float, n: int) -> float:
    """Refuse any setup whose privacy cannot be stated; return the sensitivity (in units of C).

    Raises
    ------
    PrivacyError
        For a module that mixes examples (BatchNorm and the like, per Opacus' validator), a loss
        without a stated sensitivity (in-batch negatives), or δ ≥ 1/n.
    """
    try:
        ModuleValidator.validate(model, strict=True)
    except UnsupportedModuleError as err:
        raise PrivacyError(
            "the model cannot be trained with per-example DP: "
            f"{err}. BatchNorm normalizes each image with its batch-mates' statistics, so one "
            "image changes every other image's gradient; use GroupNorm."
        ) from err
    if plan.sensitivity is None:
        raise PrivacyError(
            "refusing DP training: this loss has no stated sensitivity. With in-batch negatives "
            "(task.negatives=batch) every image appears in every other image's NT-Xent "
            "denominator, so removing one image can change the clipped gradient sum by up to "
            "~2nC while the accountant assumes C. Use task.negatives=group (group-wise "
            "clipping, sensitivity 2C) or privacy=off."
        )
    if not delta < 1.0 / n:
        raise PrivacyError(
            f"privacy.delta={delta} is not below 1/n = {1.0 / n:.2e} for this site's n={n} "
            "images: with δ ≥ 1/n, a mechanism that publishes one random image outright would "
            f"satisfy (ε, δ)-DP. Set privacy.delta below {1.0 / n:.1e} (e.g. 1e-5)."
        )
    if not math.isfinite(plan.sensitivity):
        raise PrivacyError("the sensitivity must be finite")
    return plan.sensitivity
