"""Rounds on Flower's Message API: ``aggregation=secagg`` (default) and ``aggregation=plain``.

Each round: wait for the nodes, run the shared budget query and sampling
(:meth:`server.strategy.SiteRounds.plan_round`), send the global arrays and ``(run-id, round)``
in the ``message`` layout (:mod:`ssl_fed.fed.messages`), aggregate, then apply and record
(:meth:`~server.strategy.SiteRounds.apply`, :meth:`~server.strategy.SiteRounds.record`).
``secagg`` aggregates through ssl-fed's SecAgg+ (:func:`ssl_fed.fed.secagg.aggregate_secure`, the
only secure-aggregation call on this path); ``plain`` sends ordinary train messages, checks each
reply (declared arrays, finite values, weight 1) and averages the valid deltas in the clear.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from server.strategy import SiteRounds
from ssl_fed.config import AggregationConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import GuardError, check_arrays
from ssl_fed.fed.messages import ARRAYS, METRICS, RoundOutcome, read_train_reply, train_content
from ssl_fed.fed.secagg import aggregate_secure
from ssl_fed.secagg.driver import send_and_receive

log = logging.getLogger("ssl_fed.server")


def wait_for_nodes(grid: Grid, want: int, timeout: float) -> list[int]:
    """Return the connected node ids once ``want`` are there, or whatever is there at timeout."""
    end = time.monotonic() + timeout
    nodes = sorted(grid.get_node_ids())
    while len(nodes) < want and time.monotonic() < end:
        time.sleep(0.2)
        nodes = sorted(grid.get_node_ids())
    return nodes


def aggregate_plain(
    grid: Grid, rounds: SiteRounds, node_ids: list[int], content: RecordDict, rnd: int
) -> RoundOutcome:
    """Send plain train messages, reject malformed replies, average the valid deltas."""
    msgs = [
        Message(content, dst_node_id=n, message_type=MessageType.TRAIN, group_id=str(rnd))
        for n in node_ids
    ]
    deltas: list[list[fa.NDArray]] = []
    completed: list[int] = []
    metrics: dict[int, dict[str, float]] = {}
    for reply in send_and_receive(grid, msgs, timeout=rounds.cfg.aggregation.timeout):
        node = reply.metadata.src_node_id
        if reply.has_error() or node not in node_ids or node in completed:
            continue
        try:
            records = reply.content
            if set(records.array_records) != {ARRAYS} or set(records.metric_records) != {METRICS}:
                raise GuardError("reply does not have the message layout")
            arrays, scalars = read_train_reply(records)
            check_arrays(arrays, rounds.specs)  # type: ignore[arg-type]
            check_range(arrays, rounds.cfg.aggregation.clipping_range)
        except (GuardError, ValueError, KeyError) as err:
            log.warning("round %d: update of site %s rejected: %s", rnd, rounds.label(node), err)
            continue
        deltas.append(arrays)
        completed.append(node)
        metrics[node] = scalars
    dropped = sorted(set(node_ids) - set(completed))
    if not deltas:
        return RoundOutcome(None, [], dropped, skipped="no valid update reached the server")
    mean = fa.mean_arrays(deltas)
    if not all(np.all(np.isfinite(a)) for a in mean):
        return RoundOutcome(None, [], list(node_ids), skipped="rejected aggregate: non-finite mean")
    return RoundOutcome(mean, sorted(completed), dropped, metrics)


def check_range(arrays: list[fa.NDArray], bound: float) -> None:
    """Raise :class:`GuardError` unless every value is finite and within ``[-bound, bound]``.

    The same range SecAgg's quantizer enforces (``aggregation.clipping_range``); an honest delta
    lies far inside it (measured ``max |delta|`` 0.004-0.02 against 0.5, ssl_fed/fed/secagg.py).
    """
    for i, a in enumerate(arrays):
        values = np.asarray(a, np.float64)
        if not np.all(np.isfinite(values)) or np.abs(values).max(initial=0.0) > bound:
            raise GuardError(f"array {i} has a value that is not finite or outside ±{bound}")


def run_message_rounds(
    grid: Grid, rounds: SiteRounds, first: int, last: int, cfg: AggregationConfig
) -> None:
    """Run rounds ``first..last`` (global numbering) with ``secagg`` or ``plain`` aggregation."""
    names = [s.name for s in rounds.specs]
    for rnd in range(first, last + 1):
        sim = rounds.cfg.sim
        nodes = wait_for_nodes(grid, sim.num_sites, cfg.query_timeout)
        chosen, rec = rounds.plan_round(grid, nodes, rnd)
        content = train_content(rounds.arrays, names, rounds.run_id, rnd)
        if cfg.name == "secagg":
            outcome = aggregate_secure(grid, chosen, content, cfg, rnd)
        else:
            outcome = aggregate_plain(grid, rounds, chosen, content, rnd)
        rounds.apply(rec, outcome)
        rounds.record(rec)
