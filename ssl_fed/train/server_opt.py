"""The server's optimizer in DP-FedSGD: one step per round from the summed noisy gradient.

The aggregate ``S = Σ_sites Σ_units clip(g_u) + noise`` is divided by the *expected* total batch
size ``q · Σ N_i`` (public; dividing by the realised batch size would reveal it) and handed to
Adam or momentum SGD (``train.optimizer``, ``train.lr``) as the gradient of the trained
parameters. Adaptive server optimizers are the standard companion of DP-FedSGD/FedAvg (Reddi et
al., "Adaptive Federated Optimization", arXiv 2003.00295). Post-processing only: no privacy cost.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.tasks.base import PretextTask


class ServerOptimizer:
    """Apply ``S / expected_batch`` as the gradient of the task's trainable parameters."""

    def __init__(self, task: PretextTask, kind: str, lr: float, expected_batch: float) -> None:
        self.params = [p for _, p in task.trainable_named_parameters()]
        self.expected_batch = expected_batch
        self.optimizer: torch.optim.Optimizer
        if kind == "adam":
            self.optimizer = torch.optim.Adam(self.params, lr=lr)
        elif kind == "sgd":
            self.optimizer = torch.optim.SGD(self.params, lr=lr, momentum=0.9)
        else:
            raise ValueError(f"unknown server optimizer {kind!r}; valid: adam, sgd")

    def step(self, summed: NDArray[np.float64]) -> None:
        """Take one step with the decoded noisy sum of clipped gradients (flat, trainable order)."""
        size = sum(p.numel() for p in self.params)
        if summed.shape != (size,):
            raise ValueError(f"summed gradient has shape {summed.shape}, expected ({size},)")
        grad = torch.from_numpy(np.asarray(summed, dtype=np.float64) / self.expected_batch)
        pos = 0
        for p in self.params:
            n = p.numel()
            p.grad = grad[pos : pos + n].reshape(p.shape).to(p.dtype).clone()
            pos += n
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
