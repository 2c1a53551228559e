"""The round logic both server paths share: budget query, sampling, applying the mean delta.

Round ``r`` (global numbering, continued across a resume):

1. **Budget query** (:meth:`SiteRounds.plan_round`). Before sampling, the server sends every node
   one ``query`` message carrying ``(run-id, round)``; a site replies ``can-train`` (its own ledger
   affords the round) and its public label. Sites that reply 0 are *declined*; nodes that do not
   reply are *dropped*. Only willing sites are sampled, so SecAgg never waits on a site that would
   refuse, and a site that is out of budget costs the round nothing.
2. **Aggregate.** Sampled sites train and send deltas with weight 1, through the aggregator
   ``aggregation.name`` selects (:mod:`ssl_fed.fed.aggregators`: ssl-fed's SecAgg, Flower's stock
   SecAgg+ on the legacy stack, or in the clear). Either way the result is a
   :class:`~ssl_fed.fed.layout.RoundOutcome`.
3. **Update** (:meth:`SiteRounds.apply` then :meth:`SiteRounds.record`). ``global += mean delta``
   (unchanged when the round was skipped); the tracker logs, evaluates and checkpoints.

Uniform weights: FedAvg weights sites by example count (McMahan et al., arXiv 1602.05629), but
those weights would reveal each site's data size, and the example-level DP guarantee does not need
them. Every site has weight 1.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import GuardError, allowed_fit_metrics, check_query_reply, check_scalars
from ssl_fed.fed.layout import RoundOutcome
from ssl_fed.fed.secagg_driver import send_and_receive
from ssl_fed.monitor.drift import ALARM_KEY as ALARM

log = logging.getLogger("ssl_fed.server")
QUERY_RECORD = "budget-query"
STARTUP_TIMEOUT_FACTOR = 5
"""The first budget query of a server process waits this many ``aggregation.query_timeout``s.

Start-up is not a dropout: a site's first answer includes its start-up (a Ray actor, importing
torch, opening its ledger), which on a loaded machine took longer than the query timeout and
skipped round 1 ("1 sites sampled"). The first query returns as soon as every node answered, so
the longer bound only costs time when a site is really down.
"""
NODE_ID = re.compile(r"\b\d{6,}\b")
"""A Flower node id (random 64-bit) inside a message; site ids and rounds are small numbers."""


@dataclass
class RoundRecord:
    """What happened in one round (site labels, not node ids, where known)."""

    round: int
    started: float = field(default_factory=time.time)
    sampled: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    declined: list[int] = field(default_factory=list)
    epsilon: dict[int, float] = field(default_factory=dict)
    max_abs_delta: float = 0.0
    skipped: str | None = None
    unidentified_silent: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    clipped: int | None = None
    drift_alarm: dict[int, int] = field(default_factory=dict)
    """The ``drift-alarm`` bits sites released this round (``dp-alarm`` policies only)."""
    ddp: dict[str, float] = field(default_factory=dict)
    """Distributed-noise scalars of the round (``privacy/noise_std_aggregate``, ...)."""
    declared: dict[int, dict[str, float]] = field(default_factory=dict)
    """Each answering site's data declaration (:mod:`ssl_fed.site.declared`), by site label."""


def site_scalars(metrics: dict[str, Any]) -> dict[str, float] | None:
    """Return a site's reported scalars if all are whitelisted and finite, else ``None``."""
    bit = metrics.get(ALARM)  # SecAgg's clear scalars arrive as floats: 1.0 is the bit 1
    whole = {ALARM: int(bit)} if isinstance(bit, float) and bit.is_integer() else {}
    try:
        check_scalars(metrics | whole, allowed_fit_metrics(drift_alarm=True))
    except GuardError:
        return None
    return {k: float(v) for k, v in metrics.items()}


class SiteRounds:
    """Budget-aware uniform FedAvg over encoder deltas (see the module docstring)."""

    def __init__(
        self,
        cfg: RootConfig,
        arrays: list[fa.NDArray],
        specs: list[fa.ArraySpec],
        *,
        run_id: str,
        on_round_end: Callable[[RoundRecord, list[fa.NDArray]], None],
    ) -> None:
        self.cfg, self.arrays, self.specs = cfg, arrays, specs
        self.run_id, self.on_round_end = run_id, on_round_end
        self.labels: dict[int, int] = {}
        self.declared: dict[int, dict[str, float]] = {}
        self.queried = False

    def label(self, node_id: int) -> int:
        """Return the site label a node reported (its node id if it never answered)."""
        return self.labels.get(node_id, node_id)

    def site_reason(self, reason: str) -> str:
        """Rewrite the Flower node ids in ``reason`` as site ids (node ids stay in debug logs)."""
        log.debug("skip reason with node ids: %s", reason)

        def name(match: re.Match[str]) -> str:
            node = int(match.group(0))
            return f"site {self.labels[node]}" if node in self.labels else "an unidentified node"

        return NODE_ID.sub(name, reason)

    def _query(
        self, grid: Grid, node_ids: list[int], rnd: int
    ) -> tuple[list[int], list[int], list[int]]:
        query = ConfigRecord({"run-id": self.run_id, "round": rnd})
        msgs = [
            Message(
                RecordDict({QUERY_RECORD: query}), dst_node_id=n, message_type=MessageType.QUERY
            )
            for n in node_ids
        ]
        timeout = self.cfg.aggregation.query_timeout
        if not self.queried:
            timeout *= STARTUP_TIMEOUT_FACTOR
            self.queried = True
        replies = send_and_receive(grid, msgs, timeout=timeout)
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
                log.warning("a node sent a malformed budget reply (%s); treated as silent", err)
                log.debug("malformed budget reply from node %d", nid)
                continue
            answered.add(nid)
            budget = reply.content.metric_records["budget"]
            self.labels[nid] = int(budget.get("site", nid))  # type: ignore[arg-type]
            keys = ("data-format", "public-size")
            self.declared[self.labels[nid]] = {k: float(budget[k]) for k in keys if k in budget}  # type: ignore[arg-type]
            (willing if int(budget["can-train"]) == 1 else declined).append(nid)  # type: ignore[arg-type]
        silent = [n for n in node_ids if n not in answered]
        return willing, declined, silent

    def plan_round(
        self, grid: Grid, node_ids: list[int], rnd: int
    ) -> tuple[list[int], RoundRecord]:
        """Ask every node about its budget, then sample among the willing ones (seeded)."""
        sim = self.cfg.sim
        willing, declined, silent = self._query(grid, sorted(node_ids), rnd)
        k = sim.sites_per_round or math.ceil(sim.fraction * len(willing))
        chosen = sorted(
            random.Random(sim.seed * 100_003 + rnd).sample(willing, min(k, len(willing)))
        )
        unknown = [n for n in silent if n not in self.labels]
        if unknown:
            log.debug("round %d: nodes that never answered: %s", rnd, unknown)
        rec = RoundRecord(
            rnd,
            sampled=sorted(self.label(n) for n in chosen),
            declined=sorted(self.label(n) for n in declined),
            dropped=sorted(self.labels[n] for n in silent if n in self.labels),
            unidentified_silent=len(unknown),
            declared=dict(self.declared),
        )
        log.info(
            "round %d: %d sampled, %d declined (budget), %d silent",
            rnd,
            len(chosen),
            len(declined),
            len(silent),
        )
        return chosen, rec

    def apply(self, rec: RoundRecord, outcome: RoundOutcome) -> None:
        """Fill ``rec`` from ``outcome`` and add its mean delta to the global arrays."""
        rec.completed = sorted(self.label(n) for n in outcome.completed)
        rec.dropped = sorted(set(rec.dropped) | (set(rec.sampled) - set(rec.completed)))
        rec.timings = dict(outcome.timings)
        if outcome.skipped is not None:
            rec.skipped = (
                f"{self.site_reason(outcome.skipped)} (sites sampled {rec.sampled}, "
                f"completed {rec.completed}, declined {rec.declined}, dropped {rec.dropped})"
            )
        rec.clipped = outcome.clipped
        if outcome.clipped:
            log.warning(
                "round %d: %d coordinates clipped at the SecAgg quantizer (all sites together); "
                "raise aggregation.clipping_range if this persists",
                rec.round,
                outcome.clipped,
            )
        reported: dict[int, dict[str, float]] = {}
        for node, metrics in outcome.metrics.items():
            scalars = site_scalars(metrics)
            if scalars is None:
                log.warning(
                    "round %d: site %s reported malformed scalars", rec.round, self.label(node)
                )
                continue
            reported[self.label(node)] = scalars
        rec.epsilon = {s: m["epsilon"] for s, m in reported.items() if "epsilon" in m}
        rec.drift_alarm = {s: int(m[ALARM]) for s, m in reported.items() if ALARM in m}
        for site in sorted(s for s, bit in rec.drift_alarm.items() if bit):  # sim.on_drift=alert
            log.warning("round %d: site %s released a drift alarm", rec.round, site)
        if outcome.skipped is not None:
            log.info("round %d skipped, model unchanged: %s", rec.round, rec.skipped)
        if outcome.mean is None:
            return
        rec.max_abs_delta = fa.max_abs(outcome.mean)
        self.arrays = fa.add_arrays(self.arrays, outcome.mean)

    def record(self, rec: RoundRecord) -> None:
        """End of a round: hand the round's record and the global arrays to the tracker."""
        self.on_round_end(rec, self.arrays)
