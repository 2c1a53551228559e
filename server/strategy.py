"""The legacy Flower strategy that SecAgg+ drives: budget query, sampling, delta averaging.

Round ``r`` (global numbering, continued across a resume):

1. **Budget query.** Before sampling, the server sends every node one ``query`` message carrying
   ``(run-id, round)``; a site replies ``can-train`` (its own ledger affords the round) and its
   public label. Sites that reply 0 are *declined*; nodes that do not reply are *dropped*. Only
   willing sites are sampled, so SecAgg+ never waits on a site that would refuse, and a site that
   is out of budget costs the round nothing.
2. **Fit.** Sampled sites train and send deltas with weight 1. Under SecAgg+ the server only ever
   holds the unmasked mean of the survivors' deltas (every legacy result carries that same mean);
   in plain mode it checks each delta (shapes, dtype, NaN/Inf) and averages the valid ones.
3. **Update.** ``global += mean delta``; the tracker logs, evaluates and checkpoints.

Uniform weights: FedAvg weights sites by example count (McMahan et al., arXiv 1602.05629), but
under SecAgg+ those weights would travel in the clear and reveal each site's data size, and the
example-level DP guarantee does not need them. Every site has weight 1.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.common import FitIns, FitRes, Parameters, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy
from flwr.serverapp import Grid

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import GuardError, check_arrays, check_query_reply

log = logging.getLogger("ssl_fed.server")
QUERY_RECORD = "budget-query"


@dataclass
class RoundRecord:
    """What happened in one round (site labels, not node ids, where known)."""

    round: int
    started: float = field(default_factory=time.time)
    sampled: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    declined: list[int] = field(default_factory=list)
    losses: dict[str, float] = field(default_factory=dict)
    epsilon: dict[int, float] = field(default_factory=dict)
    max_abs_delta: float = 0.0


class SiteDeltaStrategy(Strategy):
    """Budget-aware uniform FedAvg over encoder deltas (see the module docstring)."""

    def __init__(
        self,
        cfg: RootConfig,
        arrays: list[fa.NDArray],
        specs: list[fa.ArraySpec],
        *,
        run_id: str,
        round_offset: int,
        on_round_end: Any,
    ) -> None:
        self.cfg, self.arrays, self.specs = cfg, arrays, specs
        self.run_id, self.offset, self.on_round_end = run_id, round_offset, on_round_end
        self.secure = cfg.aggregation.name == "secaggplus"
        self.grid: Grid | None = None
        self.labels: dict[int, int] = {}
        self.current: RoundRecord | None = None

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Start from the server's encoder (random, or the resumed checkpoint)."""
        return ndarrays_to_parameters(self.arrays)

    def _query(self, node_ids: list[int], rnd: int) -> tuple[list[int], list[int], list[int]]:
        assert self.grid is not None, "set strategy.grid before running"
        query = ConfigRecord({"run-id": self.run_id, "round": rnd})
        msgs = [
            Message(
                RecordDict({QUERY_RECORD: query}), dst_node_id=n, message_type=MessageType.QUERY
            )
            for n in node_ids
        ]
        replies = self.grid.send_and_receive(msgs, timeout=self.cfg.aggregation.query_timeout)
        willing: list[int] = []
        declined: list[int] = []
        answered: set[int] = set()
        for reply in replies:
            nid = reply.metadata.src_node_id
            if reply.has_error():
                continue
            try:
                check_query_reply(reply.content)
            except GuardError as err:
                log.warning("node %d: malformed budget reply (%s); treated as dropped", nid, err)
                continue
            answered.add(nid)
            budget = reply.content.metric_records["budget"]
            self.labels[nid] = int(budget.get("site", nid))  # type: ignore[arg-type]
            (willing if int(budget["can-train"]) == 1 else declined).append(nid)  # type: ignore[arg-type]
        silent = [n for n in node_ids if n not in answered]
        return willing, declined, silent

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Ask every node about its budget, then sample among the willing ones."""
        rnd = self.offset + server_round
        sim = self.cfg.sim
        client_manager.wait_for(sim.num_sites, timeout=int(self.cfg.aggregation.query_timeout))
        proxies = {int(p.node_id): p for p in client_manager.all().values()}
        willing, declined, silent = self._query(sorted(proxies), rnd)
        k = sim.sites_per_round or math.ceil(sim.fraction * len(willing))
        chosen = sorted(
            random.Random(sim.seed * 100_003 + rnd).sample(willing, min(k, len(willing)))
        )
        self.current = RoundRecord(
            rnd,
            sampled=[self.label(n) for n in chosen],
            declined=[self.label(n) for n in declined],
            dropped=[self.label(n) for n in silent],
        )
        log.info(
            "round %d: %d sampled, %d declined (budget), %d silent",
            rnd,
            len(chosen),
            len(declined),
            len(silent),
        )
        fitins = FitIns(parameters, {"run-id": self.run_id, "round": rnd})
        return [(proxies[n], fitins) for n in chosen]

    def label(self, node_id: int) -> int:
        """Return the site label a node reported (its node id if it never answered)."""
        return self.labels.get(node_id, node_id)

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Any]]:
        """Apply the mean delta of the surviving sites (SecAgg+ sum, or checked plain mean)."""
        rec = self.current
        assert rec is not None
        valid: list[tuple[int, FitRes, list[fa.NDArray]]] = []
        for proxy, res in results:
            site = self.label(int(proxy.node_id))
            arrays = [np.asarray(a, np.float32) for a in parameters_to_ndarrays(res.parameters)]
            try:
                check_arrays(arrays, self.specs)  # type: ignore[arg-type]
            except GuardError as err:
                log.warning("round %d: update of site %s rejected: %s", rec.round, site, err)
                continue
            valid.append((site, res, arrays))
        rec.completed = sorted(s for s, _, _ in valid)
        rec.dropped = sorted(set(rec.dropped) | (set(rec.sampled) - set(rec.completed)))
        if not valid:
            return None, {}
        mean = valid[0][2] if self.secure else fa.mean_arrays([a for _, _, a in valid])
        rec.max_abs_delta = fa.max_abs(mean)
        keys = {k for _, res, _ in valid for k in res.metrics if k.startswith("loss-")}
        rec.losses = {
            k[5:]: float(np.mean([float(r.metrics[k]) for _, r, _ in valid if k in r.metrics]))
            for k in sorted(keys)
        }
        rec.epsilon = {
            s: float(r.metrics["epsilon"]) for s, r, _ in valid if "epsilon" in r.metrics
        }
        self.arrays = fa.add_arrays(self.arrays, mean)
        return ndarrays_to_parameters(self.arrays), {}

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
        """End of a round: hand the round's record and the global arrays to the tracker."""
        if server_round == 0 or self.current is None:
            return None
        rec, self.current = self.current, None
        if not rec.completed:
            rec.dropped = sorted(set(rec.dropped) | set(rec.sampled))
        self.on_round_end(rec, self.arrays)
        return None
