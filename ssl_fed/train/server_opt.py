"""The server's optimizer in DP-FedSGD: one step per round from the summed noisy gradient.

The aggregate ``S = Σ_sites Σ_units clip(g_u) + noise`` is divided by the *expected* total batch
size ``q · Σ N_i`` (public; dividing by the realised batch size would reveal it) and handed to
Adam or momentum SGD (``train.optimizer``, ``train.lr``) as the gradient of the trained
parameters. Adaptive server optimizers are the standard companion of DP-FedSGD/FedAvg (Reddi et
al., "Adaptive Federated Optimization", arXiv 2003.00295). Post-processing only: no privacy cost.
"""

from __future__ import annotations

from typing import Any

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


class FlatServerOptimizer:
    """The same server step on a flat numpy vector (the Flower server holds arrays, not a task).

    ``step`` takes the decoded noisy sum and returns the parameter *change* of this round:
    Adam (Kingma & Ba, arXiv 1412.6980, default β's) or momentum SGD (0.9), as in
    :class:`ServerOptimizer`. Its state (moments and step count) goes into the run's checkpoint
    (:meth:`state_dict`, :meth:`load_state_dict`), so a resumed run continues Adam exactly where
    the interrupted one stopped instead of restarting its bias correction from step 1.
    """

    def __init__(self, kind: str, lr: float, dim: int) -> None:
        if kind not in ("adam", "sgd"):
            raise ValueError(f"unknown server optimizer {kind!r}; valid: adam, sgd")
        self.kind, self.lr, self.t = kind, lr, 0
        self.m = np.zeros(dim)
        self.v = np.zeros(dim)

    def step(self, summed: NDArray[np.float64], expected_batch: float) -> NDArray[np.float64]:
        """Return ``-lr · update`` for the gradient ``summed / expected_batch``."""
        if summed.shape != self.m.shape:
            raise ValueError(f"summed gradient has shape {summed.shape}, expected {self.m.shape}")
        g = np.asarray(summed, dtype=np.float64) / expected_batch
        self.t += 1
        if self.kind == "sgd":
            self.m = 0.9 * self.m + g
            return -self.lr * self.m
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        out: NDArray[np.float64] = -self.lr * m_hat / (np.sqrt(v_hat) + eps)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer's state (kind, lr, step, moments; copies) for the checkpoint."""
        return {
            "kind": self.kind,
            "lr": self.lr,
            "t": self.t,
            "m": self.m.copy(),
            "v": self.v.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpointed state of the same optimizer (kind, lr and size checked).

        Raises ``ValueError`` naming the mismatch: a resumed run must keep ``train.optimizer``,
        ``train.lr`` and the trained parameters of the run it continues.
        """
        kind, lr = state.get("kind"), state.get("lr")
        m, v = np.asarray(state.get("m")), np.asarray(state.get("v"))
        if kind != self.kind or lr != self.lr:
            raise ValueError(
                f"the checkpoint's server optimizer is {kind} at lr={lr}, the config says "
                f"{self.kind} at lr={self.lr}: resume with the run's train.optimizer and train.lr"
            )
        if m.shape != self.m.shape or v.shape != self.v.shape:
            raise ValueError(
                f"the checkpoint's server optimizer has {m.size} coordinates, this model "
                f"{self.m.size}: resume with the run's privacy.trainable and encoder settings"
            )
        self.t = int(state["t"])
        self.m, self.v = m.astype(np.float64), v.astype(np.float64)
