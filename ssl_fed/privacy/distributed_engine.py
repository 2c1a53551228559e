"""The distributed-noise mechanism at a site: one DP-FedSGD contribution per round, Skellam share.

``privacy.noise=distributed`` selects :class:`SkellamEngine` (registered in
:data:`ssl_fed.privacy.engine.ENGINES`). A round is not a local training: the site computes, at
the received global weights, the clipped per-unit gradients of one Poisson sample at the public
rate ``q``, rounds them and adds its Skellam noise share
(:func:`ssl_fed.train.fedsgd_site.contribute`), and replies with that single ``int64`` vector,
which SecAgg+ sums modulo ``2^b``. Agarwal, Kairouz, Liu, "The Skellam Mechanism for
Differentially Private Federated Learning", NeurIPS 2021 (arXiv 2110.04995); DP-FedSGD: McMahan
et al., arXiv 1710.06963.

σ, the bits, the scale and ``min_noisy_sites`` are *derived by the site itself* from the run
config (:func:`ssl_fed.train.fedsgd_public.public_round`), never taken from the server's message,
so a server cannot lower a site's noise share.

Notes
-----
Guarantee: the ledger is charged (mechanism ``skellam``: aggregate σ, Δ2, Δ1, q, one step, bits,
γ, ``min_noisy_sites``) before any gradient is computed; the released per-round sum is then a
subsampled Skellam mechanism whose RDP the ledger composes
(:func:`ssl_fed.privacy.skellam.epsilon_for_history`), provided at least ``min_noisy_sites``
honest sites add their share and SecAgg+ hides single inputs from the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.privacy.ledger import BudgetExceededError, skellam_step
from ssl_fed.privacy.local_dp import DPSGDEngine
from ssl_fed.privacy.mechanism import Decision

if TYPE_CHECKING:
    import torch

    from ssl_fed.data.dataset import ImageDataset
    from ssl_fed.privacy.dpsgd import GradientStep
    from ssl_fed.tasks.base import PretextTask
    from ssl_fed.tasks.units import UnitPlan
    from ssl_fed.train.fedsgd_public import PublicRound


class SkellamEngine(DPSGDEngine):
    """Distributed Skellam noise under SecAgg+ (see the module docstring)."""

    name = "skellam"
    secret_randomness = True
    public: PublicRound | None = None
    last_losses: dict[str, float] | None = None
    """The last contribution's mean loss terms per image: site-local (``site_metrics.jsonl``)."""

    def bind(self, channels: int) -> PublicRound:
        """Derive (once) the run's public constants for a model with ``channels`` inputs."""
        if self.public is None:
            from ssl_fed.train.fedsgd_public import public_round

            self.public = public_round(self.cfg, channels)
        return self.public

    def _bound(self) -> PublicRound:
        if self.public is None:
            raise RuntimeError("SkellamEngine.bind(channels) must run before the engine is used")
        return self.public

    def noise_multiplier(self) -> float:
        """σ of the aggregate (relative to Δ2), public and fixed for the run."""
        return self._bound().plan.noise_multiplier

    def _ddp_terms(self) -> dict[str, float]:
        from ssl_fed.train.fedsgd_site import ledger_terms

        params = self._bound().plan.ddp
        assert params is not None
        return ledger_terms(params)

    def decide(self, round: int) -> Decision:
        """Decline a round already charged, or one whose Skellam step the ledger cannot afford."""
        if self.already_charged(round):
            return Decision(False, f"round {round} of run {self.run_id} was already charged here")
        planned = (self.noise_multiplier(), self._bound().sample_rate, 1)
        step = skellam_step(planned, self._ddp_terms())
        try:
            after = self.ledger.check_affordable(step)
        except (BudgetExceededError, ValueError) as err:
            return Decision(False, str(err))
        return Decision(True, f"ε after round {round}: {after:.3f} of {self.ledger.budget}")

    def make_private(
        self, task: PretextTask, optimizer: torch.optim.Optimizer, plan: UnitPlan, *, round: int
    ) -> GradientStep:
        """Refused: a distributed round is one contribution (:meth:`contribute`), not a training."""
        raise RuntimeError("privacy.noise=distributed rounds run SkellamEngine.contribute")

    def contribute(self, task: PretextTask, data: ImageDataset, *, round: int) -> NDArray[np.int64]:
        """Charge the round, then return the site's noisy integer vector (``int64``, length d')."""
        from ssl_fed.train.fedsgd_public import column_index
        from ssl_fed.train.fedsgd_site import contribute
        from ssl_fed.train.randomness import UnitStreams, draw_run_key, unit_ids

        pub = self._bound()
        params = pub.plan.ddp
        assert params is not None
        self.ledger.require_unit(self.cfg.privacy.unit)
        streams = UnitStreams(draw_run_key(True, 0, round), unit_ids(data.images))
        seed = int(pub.config(self.run_id, round)["ddp-seed"])
        losses: dict[str, float] = {}
        self.last_losses = losses
        return contribute(
            task,
            data,
            pub.units,
            streams,
            ledger=self.ledger,
            run_id=self.run_id,
            rnd=round,
            sample_rate=pub.sample_rate,
            params=params,
            seed=seed,
            columns=column_index(task, pub.layout),
            losses=losses,
            extra=self.extra_units,
        )

    def describe(self, plan: UnitPlan) -> dict[str, Any]:
        """Return the DP-SGD fields plus the mechanism and its codec terms."""
        return {**super().describe(plan), "mechanism": "skellam", **self._ddp_terms()}
