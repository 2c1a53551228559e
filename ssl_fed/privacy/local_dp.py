"""The two local mechanisms: no privacy, and DP-SGD with the site's own noise.

Both implement :class:`~ssl_fed.privacy.mechanism.PrivacyEngine`; training picks one through
:func:`ssl_fed.privacy.engine.build_engine` and never branches on ``privacy.enabled``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ssl_fed.config import RootConfig, epsilon_budget
from ssl_fed.privacy.accounting import Step, calibrate_noise
from ssl_fed.privacy.dpsgd import DPSGDStep, GradientStep, PlainStep, check_private_setup
from ssl_fed.privacy.ledger import BudgetExceededError, PrivacyLedger
from ssl_fed.privacy.mechanism import Decision, LedgerSource, PrivacyEngine
from ssl_fed.privacy.schedule import Schedule
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.units import UnitPlan

log = logging.getLogger("ssl_fed.privacy")


class NoPrivacyEngine(PrivacyEngine):
    """``privacy=off``: plain steps, reproducible streams, no ledger, nothing reported."""

    name = "off"
    secret_randomness = False

    @classmethod
    def open_ledger(cls, source: LedgerSource) -> PrivacyLedger | None:
        """Nothing is charged, so no ledger is opened (or created)."""
        return None

    def noise_multiplier(self) -> float | None:
        """No noise."""
        return None

    def ledger_step(self) -> None:
        """Nothing is recorded."""
        return None

    def decide(self, round: int) -> Decision:
        """Allow every round: there is no budget to spend."""
        return Decision(True, "privacy off: nothing is charged")

    def already_charged(self, round: int) -> bool:
        """Never: nothing is charged."""
        return False

    def make_private(
        self, task: PretextTask, optimizer: torch.optim.Optimizer, plan: UnitPlan, *, round: int
    ) -> GradientStep:
        """Return the plain step (same normalization as the private one)."""
        return PlainStep(task, optimizer, self.cfg.train.batch_size)

    def epsilon(self) -> float | None:
        """No accounting."""
        return None

    def public_scalars(self) -> dict[str, float]:
        """Nothing to report."""
        return {}

    def describe(self, plan: UnitPlan) -> dict[str, Any]:
        """Every privacy field empty."""
        none = ("delta", "epsilon_budget", "accountant", "noise_multiplier", "sensitivity")
        return {**dict.fromkeys(none), "privacy_unit": "none (privacy off)", "unit": None}


class DPSGDEngine(PrivacyEngine):
    """Local DP-SGD (Abadi et al., arXiv 1607.00133) charged to the site's ledger.

    Notes
    -----
    Guarantee: every training built by :meth:`make_private` is charged to the site's ledger
    before its first step with the (σ, q, steps) it runs, so the ledger's ε (Opacus' RDP or PRV
    accountant over the whole history) bounds what the site released. σ is the smallest that
    keeps the ledger's prior history plus ``train.max_rounds`` trainings of this schedule within
    ``min(target_epsilon, epsilon_budget)``; a run that already charged the ledger reuses its σ,
    so every round of a run has the same noise. A calibrated σ above the public ceiling
    ``privacy.max_noise_multiplier`` is declined before anything is charged (:meth:`too_noisy`).
    """

    name = "dpsgd"
    secret_randomness = True

    def __init__(
        self,
        cfg: RootConfig,
        schedule: Schedule,
        *,
        n: int,
        run_id: str,
        ledger: PrivacyLedger | None = None,
    ) -> None:
        super().__init__(cfg, schedule, n=n, run_id=run_id)
        if ledger is None:
            raise ValueError("privacy is on but no ledger was given; every DP training is charged")
        self.ledger: PrivacyLedger = ledger
        self._sigma: float | None = None
        if not schedule.size_is_public:
            log.warning(
                "data.public_size is not declared: q = B/n uses the exact n, so ε is a function "
                "of private data and stays at the site; declare data.public_size (e.g. n rounded "
                "down to a bucket) to report it"
            )

    @classmethod
    def open_ledger(cls, source: LedgerSource) -> PrivacyLedger | None:
        """Open the ledger every DP training is charged to."""
        if source is None:
            raise ValueError("privacy is on but no ledger was given; every DP training is charged")
        return source if isinstance(source, PrivacyLedger) else source()

    @property
    def target_epsilon(self) -> float:
        """The ε σ is calibrated for: ``min(target_epsilon, budget)`` (applied only here)."""
        pr = self.cfg.privacy
        return min(pr.target_epsilon, epsilon_budget(pr))

    def noise_multiplier(self) -> float:
        """σ: fixed by config, reused from this run's ledger entries, or calibrated once.

        Calibration sizes σ so that the ledger's prior history plus ``train.max_rounds``
        trainings of this schedule stays within :attr:`target_epsilon`.

        Raises
        ------
        ValueError
            When the ledger already spent the target (no σ can keep a training within it).
        """
        if self._sigma is None:
            self._sigma = self._choose_noise()
        return self._sigma

    def _choose_noise(self) -> float:
        pr = self.cfg.privacy
        if pr.noise_multiplier is not None:
            return pr.noise_multiplier
        earlier = self.ledger.entries_for(self.run_id)
        if earlier:
            return earlier[0].noise_multiplier
        return calibrate_noise(
            target_epsilon=self.target_epsilon,
            delta=pr.delta,
            sample_rate=self.schedule.sample_rate,
            steps=self.schedule.steps * self.cfg.train.max_rounds,
            prior=self.ledger.history,
            kind=pr.accountant,
        )

    def ledger_step(self) -> Step:
        """Return (σ, q, steps): what one training adds to the accountant's history."""
        return (self.noise_multiplier(), self.schedule.sample_rate, self.schedule.steps)

    def already_charged(self, round: int) -> bool:
        """Whether the ledger holds an entry for ``round`` of this run."""
        return any(e.round == round for e in self.ledger.entries_for(self.run_id))

    def too_noisy(self) -> str | None:
        """Why a calibrated σ above ``privacy.max_noise_multiplier`` is declined (``None``: ok).

        With little lifetime budget left, calibration still finds a σ that fits it, but a run
        at that σ releases noise and learns nothing: on digits every DP run already sits at the
        pure-noise floor by σ ≈ 2.4 (research note dp-ssl-on-digits.md, σ = 100 control), and
        a full budget never needed σ above 5.34 there (ε = 3). Declining spends nothing; an
        explicit ``privacy.noise_multiplier`` is the operator's own choice and is not checked.
        """
        ceiling = self.cfg.privacy.max_noise_multiplier
        if ceiling is None or self.cfg.privacy.noise_multiplier is not None:
            return None
        sigma = self.noise_multiplier()
        if sigma <= ceiling:
            return None
        return (
            f"budget too small: σ would be {sigma:.3g} > ceiling {ceiling:g} "
            "(privacy.max_noise_multiplier; the run would learn nothing)"
        )

    def decide(self, round: int) -> Decision:
        """Decline a round already charged, one the budget cannot afford, or one too noisy."""
        if self.already_charged(round):
            return Decision(False, f"round {round} of run {self.run_id} was already charged here")
        try:
            after = self.ledger.check_affordable(self.ledger_step())
            too_noisy = self.too_noisy()
        except (BudgetExceededError, ValueError) as err:
            return Decision(False, str(err))
        if too_noisy is not None:
            return Decision(False, too_noisy)
        return Decision(True, f"ε after round {round}: {after:.3f} of {self.ledger.budget}")

    def make_private(
        self, task: PretextTask, optimizer: torch.optim.Optimizer, plan: UnitPlan, *, round: int
    ) -> GradientStep:
        """Refuse an unstateable setup, charge the ledger, then wrap ``optimizer`` in DP-SGD.

        Raises
        ------
        PrivacyError, BudgetExceededError, LedgerError
            Before anything is trained (and, but for LedgerError, before anything is charged);
            BudgetExceededError also when σ would exceed the ceiling (:meth:`too_noisy`).
        """
        pr = self.cfg.privacy
        self.ledger.require_unit(pr.unit)
        too_noisy = self.too_noisy()
        if too_noisy is not None:
            raise BudgetExceededError(too_noisy)
        sensitivity = check_private_setup(task, plan, delta=pr.delta, n=self.n)
        sigma, rate, steps = self.ledger_step()
        self.ledger.charge(
            run_id=self.run_id,
            round=round,
            noise_multiplier=sigma,
            sample_rate=rate,
            steps=steps,
            sensitivity=sensitivity,
        )
        step = DPSGDStep(
            task,
            optimizer,
            noise_multiplier=sigma,
            max_grad_norm=pr.max_grad_norm,
            sensitivity=sensitivity,
            expected_batch_size=self.cfg.train.batch_size,
            chunk_size=self.cfg.train.vmap_chunk_size,
            method=pr.grad_method,
        )
        step.extra_units = self.extra_units
        return step

    def epsilon(self) -> float:
        """ε of the ledger's whole history."""
        return float(self.ledger.epsilon())

    def public_scalars(self) -> dict[str, float]:
        """ε and ε-remaining, only when q came from a public size (else they reveal n)."""
        if not self.schedule.size_is_public:
            return {}
        return {"epsilon": self.epsilon(), "epsilon-remaining": float(self.ledger.remaining())}

    def describe(self, plan: UnitPlan) -> dict[str, Any]:
        """δ, budget, accountant, σ, sensitivity and the privacy unit."""
        pr = self.cfg.privacy
        return {
            "delta": pr.delta,
            "epsilon_budget": epsilon_budget(pr),
            "accountant": pr.accountant,
            "noise_multiplier": self.noise_multiplier(),
            "sensitivity": plan.sensitivity,
            "privacy_unit": plan.describes,
            "unit": pr.unit,
        }
