"""The ``plain`` round over Flower's Message API: ordinary train messages, averaged in the clear.

Comparison only (no secure aggregation): each reply is checked (the message layout, the declared
arrays, finite values within ``±aggregation.clipping_range``) and the valid deltas are averaged
with uniform weights. Used by :class:`ssl_fed.fed.aggregators.plain.PlainAggregator`.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from ssl_fed.fed import arrays as fa
from ssl_fed.fed.guard import GuardError, check_arrays
from ssl_fed.fed.messages import ARRAYS, METRICS, RoundOutcome, read_train_reply
from ssl_fed.fed.rounds import SiteRounds
from ssl_fed.fed.secagg_driver import send_and_receive

log = logging.getLogger("ssl_fed.server")


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
    lies far inside it (measured ``max |delta|`` 0.004-0.02 against 0.5, :mod:`ssl_fed.fed.secagg`).
    """
    for i, a in enumerate(arrays):
        values = np.asarray(a, np.float64)
        if not np.all(np.isfinite(values)) or np.abs(values).max(initial=0.0) > bound:
            raise GuardError(f"array {i} has a value that is not finite or outside ±{bound}")
