"""Flower's stock SecAgg+ (``aggregation=flower-secaggplus``): a legacy strategy and its workflow.

flwr 1.42's ``SecAggPlusWorkflow`` exists only on the legacy stack (``LegacyContext`` +
``DefaultWorkflow``; site: ``secaggplus_mod``), so this adapter exposes
:class:`ssl_fed.fed.rounds.SiteRounds` as a ``flwr.server.strategy.Strategy``: ``configure_fit``
runs the shared budget query and sampling, ``aggregate_fit`` applies the shared update, and
``evaluate`` records the round. Under SecAgg+ every legacy result carries the same unmasked mean
of the survivors' deltas, so the first result that passes the array checks is the mean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.common import FitIns, FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid

from ssl_fed.config import AggregationConfig
from ssl_fed.fed.guard import GuardError, check_arrays
from ssl_fed.fed.layout import AGGREGATION_WEIGHT, RoundOutcome
from ssl_fed.fed.rounds import RoundRecord, SiteRounds

log = logging.getLogger("ssl_fed.server")


class SiteDeltaStrategy(Strategy):
    """Legacy-stack adapter over :class:`SiteRounds` (see the module docstring)."""

    def __init__(self, rounds: SiteRounds, grid: Grid, round_offset: int) -> None:
        self.rounds, self.grid, self.offset = rounds, grid, round_offset
        self.current: RoundRecord | None = None

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Start from the server's encoder (random, or the resumed checkpoint)."""
        return ndarrays_to_parameters(self.rounds.arrays)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Ask every node about its budget, then sample among the willing ones."""
        rnd = self.offset + server_round
        cfg = self.rounds.cfg
        client_manager.wait_for(cfg.sim.num_sites, timeout=int(cfg.aggregation.query_timeout))
        proxies = {int(p.node_id): p for p in client_manager.all().values()}
        chosen, self.current = self.rounds.plan_round(self.grid, sorted(proxies), rnd)
        params = ndarrays_to_parameters(self.rounds.arrays)
        fitins = FitIns(params, {"run-id": self.rounds.run_id, "round": rnd})
        return [(proxies[n], fitins) for n in chosen]

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Any]]:
        """Apply the SecAgg+ mean of the surviving sites (checked against the declared arrays)."""
        rec = self.current
        assert rec is not None
        completed: list[int] = []
        metrics: dict[int, dict[str, float]] = {}
        mean = None
        for proxy, res in results:
            node = int(proxy.node_id)
            arrays = [np.asarray(a, np.float32) for a in parameters_to_ndarrays(res.parameters)]
            try:
                check_arrays(arrays, self.rounds.specs)  # type: ignore[arg-type]
            except GuardError as err:
                log.warning(
                    "round %d: result of site %s rejected: %s",
                    rec.round,
                    self.rounds.label(node),
                    err,
                )
                continue
            mean = arrays if mean is None else mean
            completed.append(node)
            metrics[node] = dict(res.metrics)  # type: ignore[arg-type]
        skipped = None if mean is not None else "no SecAgg+ result reached the server"
        self.rounds.apply(rec, RoundOutcome(mean, completed, [], metrics, skipped))
        return ndarrays_to_parameters(self.rounds.arrays), {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, Any]]:
        """No federated evaluation: the server probes the global encoder itself."""
        return []

    def aggregate_evaluate(
        self, server_round: int, results: list[Any], failures: list[Any]
    ) -> tuple[float | None, dict[str, Any]]:
        """Unused (no federated evaluation)."""
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Any]] | None:
        """End of a round: record it (a round SecAgg+ gave up on counts as skipped)."""
        if server_round == 0 or self.current is None:
            return None
        rec, self.current = self.current, None
        if not rec.completed and rec.skipped is None:
            reason = "Flower's SecAgg+ produced no aggregate (too few survivors or no sites)"
            self.rounds.apply(rec, RoundOutcome(None, [], [], skipped=reason))
        self.rounds.record(rec)
        return None


def run_legacy_rounds(
    grid: Grid, context: Context, strategy: Strategy, num_rounds: int, cfg: AggregationConfig
) -> None:
    """Run ``num_rounds`` rounds of a legacy ``strategy`` through Flower's stock SecAgg+.

    The weight cap equals the uniform site weight, so weights cost no quantization levels.
    """
    legacy = LegacyContext(
        context=context, config=ServerConfig(num_rounds=num_rounds), strategy=strategy
    )
    fit: Callable[[Grid, Any], None] = SecAggPlusWorkflow(
        num_shares=cfg.num_shares,
        reconstruction_threshold=cfg.reconstruction_threshold,
        max_weight=float(AGGREGATION_WEIGHT),
        clipping_range=cfg.clipping_range,
        quantization_range=cfg.quantization_range,
        timeout=cfg.timeout,
    )
    DefaultWorkflow(fit_workflow=fit)(grid, legacy)
