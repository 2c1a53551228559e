"""Neighbouring-dataset audit through the real ``train_local``: the released clipped sums per step.

Test-only hooks (monkeypatching; nothing in config or from the server can enable them): the run
key of the per-image streams is fixed, so D and its neighbour share every draw, and Opacus'
``DPOptimizer.add_noise`` is wrapped to record the summed clipped gradient just before the noise.
``train.lr = 0`` keeps the weights fixed, so every step of the two runs is compared at the same
model, as the per-step sensitivity bound is stated.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from opacus.optimizers import DPOptimizer

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.train import local
from tests.helpers import tiny_task


def audit_config(
    task: str,
    batch: int,
    public_size: int,
    c: float,
    multiplicity: int,
    method: str = "vmap",
    unit: str = "image",
    cap: int = 8,
) -> RootConfig:
    """σ fixed, C small enough that every unit is clipped, lr 0, one epoch."""
    cfg = RootConfig()
    cfg.task = replace(cfg.task, name=task, multiplicity=multiplicity, group_size=2)
    cfg.data = replace(cfg.data, public_size=public_size)
    cfg.train = replace(
        cfg.train, batch_size=batch, local_epochs=1, lr=0.0, optimizer="sgd", progress=False
    )
    cfg.privacy = replace(
        cfg.privacy,
        noise_multiplier=1.0,
        max_grad_norm=c,
        epsilon_budget=1e9,
        target_epsilon=1e9,
        grad_method=method,
        unit=unit,
        max_images_per_person=cap,
    )
    return cfg


def released_sums(
    monkeypatch: pytest.MonkeyPatch,
    tmp: str,
    cfg: RootConfig,
    images: torch.Tensor,
    key: bytes,
    persons: tuple[str, ...] | None = None,
) -> list[torch.Tensor]:
    """Run ``train_local`` on ``images`` with run key ``key``; return each step's clipped sum.

    ``persons`` (one id per image) makes the person the unit (``privacy.unit=person``).
    """
    sums: list[torch.Tensor] = []
    original = DPOptimizer.add_noise

    def capture(self: DPOptimizer) -> None:
        sums.append(torch.cat([p.summed_grad.detach().flatten() for p in self.params]))
        original(self)

    monkeypatch.setattr(DPOptimizer, "add_noise", capture)
    monkeypatch.setattr(local, "draw_run_key", lambda private, seed, round: key)
    task = tiny_task(cfg.task.name, seed=7).float()
    task.cfg = cfg.task
    ledger = PrivacyLedger(tmp, budget=1e9, delta=1e-5, privacy_unit=cfg.privacy.unit)
    data = ImageDataset(images, None, "audit", persons)
    local.train_local(task, data, cfg, ledger=ledger, run_id="audit")
    monkeypatch.undo()
    return sums


def worst_change(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    """Largest per-step norm of the difference of two runs' released sums."""
    assert len(first) == len(second), "neighbours must take the same public number of steps"
    return max(float((a - b).norm()) for a, b in zip(first, second, strict=True))
