"""Drive one SecAgg+ round over Flower 1.42's Message API (``Grid.send_and_receive``).

Each protocol stage (advertise, share, collect, consist, unmask) is one batch of TRAIN messages
carrying a ``ConfigRecord`` under :data:`RECORD` (the masked vector travels in an ``ArrayRecord``
under :data:`MASKED`). The masked-input stage also carries the caller's train content (global
arrays and config) so the site's train handler runs inside
:func:`ssl_fed.fed.secagg_mod.secagg_mod`.
Every stage waits at most its timeout; a site that does not answer in time, answers with an
error, or answers malformed is dropped for the rest of the round, and the protocol tolerates it
if enough neighbours survive. An error reply's reason (e.g. the site's "protocol version
mismatch") is kept in the result's ``rejected`` map, so the caller can log why a site left. With
``SecAggConfig.clear_metrics`` the site's whitelisted scalars come back beside the masked vector
in a MetricRecord under :data:`CLEAR`.

Notes
-----
The five stages are not overlapped across rounds. Folding round ``r + 1``'s advertise into round
``r``'s unmask (issue 15) would save one exchange per round (measured ~0.1-0.14 s of stage wall at
1M parameters x 10 simulated sites, where the whole round is ~1.5-3x a plain one), but the
advertise request *is* the round setup: participants, graph seed and round id, whose digest every
signed key and consistency signature is bound to. Round ``r + 1``'s participants are sampled only
after round ``r`` ends (its survivors, declines and budgets), so keys would have to be bound to a
setup not yet fixed, or kept unbound until later, and secret keys would sit in the site's state
across rounds. Either changes what a signature proves; the saving does not justify it. The
setup already travels with the advertise request (one round trip saved, see ``setup.py``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.common.constant import SType
from flwr.serverapp import Grid
from numpy.typing import NDArray

from ssl_fed.secagg.params import SecAggConfig
from ssl_fed.secagg.result import AggregateResult, Skipped
from ssl_fed.secagg.server import SecAggServer
from ssl_fed.secagg.setup import ArraySpec
from ssl_fed.secagg.wire import Payload, npy_bytes, npy_view

RECORD = "secagg"
MASKED = "secagg.masked"
CLEAR = "secagg.clear"


def spec_from_arrays(arrays: ArrayRecord) -> ArraySpec:
    """List (name, shape) of an ArrayRecord in order: what the sites must send back."""
    return [(name, tuple(arr.shape)) for name, arr in arrays.items()]


def to_array_record(result: AggregateResult, dtype: type[np.floating] = np.float32) -> ArrayRecord:
    """Convert the aggregate to an ArrayRecord (spec names and order), cast to ``dtype``."""
    return ArrayRecord(
        {k: Array(np.ascontiguousarray(v, dtype=dtype)) for k, v in result.arrays.items()}
    )


def array_view(array: Array) -> NDArray[Any]:
    """Read a Flower ``Array`` as a read-only NumPy view of its bytes (no copy, unlike ``numpy()``).

    ``Array.numpy()`` runs ``np.load`` on a ``BytesIO``, which copies the data once more; at 11M
    parameters that copy is a noticeable part of a round. Non-NumPy serialisations fall back to
    ``numpy()``.
    """
    if array.stype != SType.NUMPY:
        return array.numpy()
    return npy_view(array.data)


def masked_array(vector: NDArray[np.unsignedinteger[Any]]) -> Array:
    """Wrap a masked vector as a Flower ``Array`` (``numpy.ndarray`` bytes) with a single copy."""
    return Array(
        dtype=str(vector.dtype),
        shape=tuple(vector.shape),
        stype=SType.NUMPY,
        data=npy_bytes(vector),
    )


def _pack(payload: Payload, extra: RecordDict | None = None) -> RecordDict:
    rd = RecordDict() if extra is None else RecordDict(dict(extra.items()))
    rd[RECORD] = ConfigRecord({k: v for k, v in payload.items() if k != "masked"})
    return rd


def _unpack(msg: Message, timings: dict[str, float]) -> Payload | None:
    if msg.has_error() or RECORD not in msg.content.config_records:
        return None
    payload: dict[str, Any] = dict(msg.content.config_records[RECORD])
    if MASKED in msg.content.array_records:
        t0 = time.perf_counter()
        try:
            payload["masked"] = array_view(msg.content.array_records[MASKED]["masked"])
        except (KeyError, ValueError, TypeError):
            payload["masked"] = None
        timings["server.serialize"] = (
            timings.get("server.serialize", 0.0) + time.perf_counter() - t0
        )
    return payload


def _clear_scalars(msg: Message) -> dict[str, float]:
    """Return the finite numeric scalars of the reply's clear MetricRecord (drop anything else)."""
    if CLEAR not in msg.content.metric_records:
        return {}
    out: dict[str, float] = {}
    for key, value in msg.content.metric_records[CLEAR].items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


POLL_MIN, POLL_MAX, POLL_FRACTION = 0.005, 0.1, 0.1
"""Pull interval: ``POLL_FRACTION`` of the time already waited, clamped to [5 ms, 100 ms]."""


def send_and_receive(grid: Grid, msgs: list[Message], timeout: float) -> list[Message]:
    """``Grid.send_and_receive`` with proportional back-off polling.

    Flower's in-memory grid sleeps a fixed 100 ms between pulls and its deployed grid 3 s, which
    costs up to that much per exchange; SecAgg+ has five stages and the server also sends a budget
    query and (in plain mode) a train exchange through this function. The next pull comes after
    ``POLL_FRACTION`` of the time waited so far (at least 5 ms, at most 100 ms), so a reply is
    seen at most ~10% (+5 ms) after it arrives for short exchanges, and a remote SuperLink sees
    at most 10 pulls per second once an exchange has run for a second. Against the former
    doubling schedule (5 ms to 100 ms), for replies ready 50-300 ms after the push (the key
    stages in simulation) the mean wait after a reply is ready drops from 48 ms to 9 ms per stage
    (both schedules simulated over ready times uniform in 50-300 ms); a 1-8 s deployed stage
    is unchanged.
    """
    pending = set(grid.push_messages(msgs))
    start = time.monotonic()
    end = start + timeout
    out: list[Message] = []
    while pending:
        got = list(grid.pull_messages(pending))
        out.extend(got)
        pending.difference_update(m.metadata.reply_to_message_id for m in got)
        now = time.monotonic()
        if not pending or now >= end:
            break
        delay = min(POLL_MAX, max(POLL_MIN, POLL_FRACTION * (now - start)))
        time.sleep(min(delay, end - now))
    return out


def run_secagg_round(
    grid: Grid,
    node_ids: list[int],
    train_content: RecordDict,
    spec: ArraySpec,
    cfg: SecAggConfig,
    *,
    message_type: str = MessageType.TRAIN,
    group_id: str = "",
) -> AggregateResult | Skipped:
    """Run SecAgg+ with the sampled ``node_ids`` and return the weighted mean or a skip.

    Parameters
    ----------
    grid : Grid
        The ServerApp's grid.
    node_ids : list[int]
        Sampled sites (at least 3); each must run :func:`ssl_fed.fed.secagg_mod.secagg_mod`.
    train_content : RecordDict
        What a plain train message would carry (e.g. ``{"arrays": ..., "config": ...}``); it
        reaches the site's train handler unchanged in the masked-input stage.
    spec : ArraySpec
        Names and shapes the sites must return (:func:`spec_from_arrays` of the global model).
    cfg : SecAggConfig
        Clipping, bits, graph degree, threshold, timeouts and reply keys.
    message_type : str
        ``"train"`` or a named train action such as ``"train.secagg"``.
    group_id : str
        Flower group id of the stage messages (e.g. the server round).

    Returns
    -------
    AggregateResult | Skipped
        On skip, keep the model unchanged; ``reason`` says why (e.g. too few survivors).
    """
    server = SecAggServer(node_ids, spec, cfg)
    timings: dict[str, float] = {}
    errors: dict[int, str] = {}
    clear: dict[int, dict[str, float]] = {}
    t_round = time.perf_counter()

    def exchange(
        stage: str, requests: dict[int, Payload], timeout: float, extra: RecordDict | None = None
    ) -> dict[int, Payload]:
        t0 = time.perf_counter()
        msgs = [
            Message(_pack(p, extra), dst_node_id=nid, message_type=message_type, group_id=group_id)
            for nid, p in requests.items()
        ]
        replies: dict[int, Payload] = {}
        for rep in send_and_receive(grid, msgs, timeout):
            src = rep.metadata.src_node_id
            if rep.has_error() and src in requests:
                errors.setdefault(src, f"{stage}: site replied with error: {rep.error.reason}")
            payload = _unpack(rep, timings)
            if payload is not None and src in requests and src not in replies:
                replies[src] = payload
                if stage == "collect":
                    clear[src] = _clear_scalars(rep)
        timings[f"stage.{stage}"] = time.perf_counter() - t0
        return replies

    steps = (
        ("advertise", server.advertise_requests, server.accept_advertise, cfg.stage_timeout),
        ("share", server.share_requests, server.accept_shares, cfg.stage_timeout),
        ("collect", server.collect_requests, server.accept_masked, cfg.train_timeout),
    )
    for stage, make, accept, timeout in steps:
        requests = make()
        if stage == "collect":
            for p in requests.values():
                p.update(
                    array_key=cfg.array_key,
                    weight_key=cfg.weight_key,
                    clear_metrics=cfg.clear_metrics,
                )
        replies = exchange(stage, requests, timeout, train_content if stage == "collect" else None)
        skip = accept(replies)
        if skip is not None:
            return _annotate(skip, timings, errors, clear, t_round)
    skip = server.accept_consist(exchange("consist", server.consist_requests(), cfg.stage_timeout))
    if skip is not None:
        return _annotate(skip, timings, errors, clear, t_round)
    server.accept_unmask(exchange("unmask", server.unmask_requests(), cfg.stage_timeout))
    return _annotate(server.finish(), timings, errors, clear, t_round)


def _annotate(
    result: AggregateResult | Skipped,
    timings: dict[str, float],
    errors: dict[int, str],
    clear: dict[int, dict[str, float]],
    t_round: float,
) -> AggregateResult | Skipped:
    """Add stage timings, site error reasons and the survivors' clear scalars to ``result``."""
    result.timings.update(timings)
    result.timings["round"] = time.perf_counter() - t_round
    for nid, reason in errors.items():
        if nid not in result.survivors:
            result.rejected.setdefault(nid, reason)
    result.clear = {n: clear[n] for n in result.survivors if clear.get(n)}
    return result
