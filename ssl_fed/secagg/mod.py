"""Client mod: run a site's side of SecAgg+ around its Message-API train handler.

Usage (Flower 1.42)::

    app = ClientApp()

    @app.train(mods=[secagg_mod])
    def train(msg: Message, context: Context) -> Message:
        ...  # reply content: {"arrays": ArrayRecord, "metrics": MetricRecord(num-examples=...)}

Messages without the ``"secagg"`` ConfigRecord pass straight to the handler, so the same
handler also serves plain rounds. In the masked-input stage the handler runs on the server's train
content; its reply's ArrayRecord (key sent by the server, default ``"arrays"``) and weight (default
metric ``"num-examples"``) are encoded, masked and sent back as one ``uint{b}`` vector. Other
metrics are not sent (they would leave the site unprotected), unless the server's request sets
``clear_metrics`` (``SecAggConfig.clear_metrics``): then the other scalars of the weight's
MetricRecord travel in the clear beside the masked vector. Put a guard mod *inside* this mod that
checks they are scalars the site may release (ssl-fed's :mod:`ssl_fed.fed.guard` does).
"""

from __future__ import annotations

import time
from typing import Any

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp.typing import ClientAppCallable

from ssl_fed.secagg import client
from ssl_fed.secagg.driver import CLEAR, MASKED, RECORD
from ssl_fed.secagg.wire import Payload

STATE_KEY = "secagg.state"
ERROR_CODE = 6  # flwr ErrorCode.MOD_FAILED_PRECONDITION


def _train(
    msg: Message, context: Context, call_next: ClientAppCallable, request: Payload
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    original = msg.content
    msg.content = RecordDict({k: v for k, v in original.items() if k != RECORD})
    try:
        reply = call_next(msg, context)
    finally:
        msg.content = original
    if reply.has_error():
        raise ValueError(f"train handler failed: {reply.error.reason}")
    akey, wkey = str(request.get("array_key", "arrays")), str(request.get("weight_key", ""))
    if akey not in reply.content.array_records:
        raise ValueError(f"train reply has no ArrayRecord {akey!r}")
    arrays = {k: v.numpy() for k, v in reply.content.array_records[akey].items()}
    for rec in reply.content.metric_records.values():
        if wkey in rec:
            send = request.get("clear_metrics") is True
            clear = {k: v for k, v in rec.items() if k != wkey} if send else {}
            return arrays, float(rec[wkey]), clear  # type: ignore[arg-type]
    raise ValueError(f"train reply has no metric {wkey!r} (the site's weight)")


def secagg_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Answer one SecAgg+ stage for this site; pass non-SecAgg messages to ``call_next``."""
    if RECORD not in msg.content.config_records:
        return call_next(msg, context)
    request: Payload = dict(msg.content.config_records[RECORD])
    stage = request.get("stage")
    clear: dict[str, Any] = {}
    try:
        if stage == "advertise":
            state, reply = client.advertise(context.node_id, request)
        else:
            if STATE_KEY not in context.state.config_records:
                raise ValueError(f"stage {stage!r} before advertise: no round state")
            blob = context.state.config_records[STATE_KEY]["blob"]
            state = client.ClientState.from_bytes(blob)  # type: ignore[arg-type]
            if stage == "share":
                state, reply = client.share(state, request)
            elif stage == "collect":
                t0 = time.perf_counter()
                arrays, weight, clear = _train(msg, context, call_next, request)
                t1 = time.perf_counter()
                encoded = state.round_setup().encode(arrays, weight)
                t2 = time.perf_counter()
                state, reply = client.mask(state, request, encoded)
                reply.update(t_train=t1 - t0, t_encode=t2 - t1)
            elif stage == "unmask":
                state, reply = client.unmask(state, request)
            else:
                raise ValueError(f"unknown SecAgg stage {stage!r}")
    except ValueError as err:
        return Message(Error(code=ERROR_CODE, reason=f"secagg {stage}: {err}"), reply_to=msg)
    context.state.config_records[STATE_KEY] = ConfigRecord({"blob": state.to_bytes()})
    content = RecordDict()
    if "masked" in reply:
        t0 = time.perf_counter()
        content[MASKED] = ArrayRecord({"masked": Array(reply.pop("masked"))})
        reply["t_serialize"] = time.perf_counter() - t0
    if clear:
        content[CLEAR] = MetricRecord(clear)
    content[RECORD] = ConfigRecord(reply)
    return Message(content, reply_to=msg)
