"""The privacy-engine interface: what every mechanism answers (:mod:`ssl_fed.privacy.engine`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ssl_fed.config import RootConfig
from ssl_fed.privacy.accounting import Step
from ssl_fed.privacy.dpsgd import GradientStep
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.schedule import Schedule
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan

LedgerSource = PrivacyLedger | Callable[[], PrivacyLedger] | None
"""A ledger, a function that opens it (called only by an engine that charges one), or none."""


@dataclass(frozen=True)
class Decision:
    """The engine's answer to "can this site train this round?", with the reason."""

    ok: bool
    reason: str


class PrivacyEngine(ABC):
    """One privacy mechanism for one training of one site (see the module docstring)."""

    name: ClassVar[str]
    secret_randomness: ClassVar[bool]
    """Whether the per-image streams must be keyed from OS entropy (never from ``train.seed``)."""
    extra_units: Callable[[], dict[str, torch.Tensor]] | None = None
    """The audit's seam (:mod:`ssl_fed.audit.simulation`): extra gradient rows (white-box
    canaries) that every step of this training adds as units, clipped and noised like them;
    ``None`` in training. It never changes σ, q, the sensitivity or the ledger entry."""

    def __init__(
        self,
        cfg: RootConfig,
        schedule: Schedule,
        *,
        n: int,
        run_id: str,
        ledger: PrivacyLedger | None = None,
    ) -> None:
        self.cfg, self.schedule, self.n, self.run_id = cfg, schedule, n, run_id

    @classmethod
    @abstractmethod
    def open_ledger(cls, source: LedgerSource) -> PrivacyLedger | None:
        """Return the ledger this mechanism charges (``None``: it charges none)."""

    @abstractmethod
    def noise_multiplier(self) -> float | None:
        """σ of this training, calibrated once (``None`` without noise)."""

    @abstractmethod
    def ledger_step(self) -> Step | None:
        """Return what one training adds to the accountant's history (``None``: nothing)."""

    @abstractmethod
    def decide(self, round: int) -> Decision:
        """Whether ``round`` of this run may be trained here, and why."""

    @abstractmethod
    def already_charged(self, round: int) -> bool:
        """Whether the ledger holds an entry for ``round`` of this run."""

    @abstractmethod
    def make_private(
        self, task: PretextTask, optimizer: torch.optim.Optimizer, plan: UnitPlan, *, round: int
    ) -> GradientStep:
        """Check the setup, record the training, and return the step that trains ``task``."""

    @abstractmethod
    def epsilon(self) -> float | None:
        """ε spent by the site so far (``None`` without accounting)."""

    @abstractmethod
    def public_scalars(self) -> dict[str, float]:
        """Return the privacy scalars a site may send to the server after a round."""

    @abstractmethod
    def describe(self, plan: UnitPlan) -> dict[str, Any]:
        """Return the privacy fields of a run's ``metrics.json``."""
