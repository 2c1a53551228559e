"""Client mod: run a site's side of SecAgg+ around its Message-API train handler.

Usage (Flower 1.42)::

    app = ClientApp()

    @app.train(mods=[secagg_mod])
    def train(msg: Message, context: Context) -> Message:
        ...  # reply content: {"arrays": ArrayRecord, "metrics": MetricRecord(num-examples=...)}

Fail closed: :data:`secagg_mod` (``make_secagg_mod(require_secagg=True)``) answers a message
without the ``"secagg"`` ConfigRecord with an error and never calls the handler, so a server
cannot downgrade a site that requires secure aggregation to a plain round by leaving the record
out. A site whose own policy allows plain rounds uses ``make_secagg_mod(require_secagg=False)``:
then such messages pass straight to the handler. A masked-input request is validated
(:func:`ssl_fed.secagg.client.check_collect`: header, round, stage order, neighbours) before the
handler trains. In the masked-input stage the handler runs on the server's train
content; its reply's ArrayRecord (key sent by the server, default ``"arrays"``) and weight (default
metric ``"num-examples"``) are encoded, masked and sent back as one ``uint{b}`` vector. Other
metrics are not sent (they would leave the site unprotected), unless the server's request sets
``clear_metrics`` (``SecAggConfig.clear_metrics``): then the other scalars of the weight's
MetricRecord travel in the clear beside the masked vector. Put a guard mod *inside* this mod that
checks they are scalars the site may release (ssl-fed's :mod:`ssl_fed.fed.guard` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp.typing import ClientAppCallable, Mod

from ssl_fed.fed.secagg_driver import CLEAR, MASKED, RECORD, array_view, masked_array
from ssl_fed.secagg import client
from ssl_fed.secagg.identity import SiteIdentity
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
    arrays = {k: array_view(v) for k, v in reply.content.array_records[akey].items()}
    for rec in reply.content.metric_records.values():
        if wkey in rec:
            send = request.get("clear_metrics") is True
            clear = {k: v for k, v in rec.items() if k != wkey} if send else {}
            return arrays, float(rec[wkey]), clear  # type: ignore[arg-type]
    raise ValueError(f"train reply has no metric {wkey!r} (the site's weight)")


REFUSED = "refused: not an ssl-fed SecAgg stage, and this site requires secure aggregation"


def make_secagg_mod(
    *, require_secagg: bool = True, identity_of: Callable[[int], SiteIdentity] | None = None
) -> Mod:
    """Return the SecAgg mod; ``require_secagg=False`` lets plain messages reach the handler.

    Only the site's own policy may pass ``False`` (never a value taken from the run config).
    With ``identity_of`` (node id -> :class:`~ssl_fed.secagg.identity.SiteIdentity`, e.g.
    ``lambda _: load_identity(key, roster)`` deployed or ``partial(derived_identity, secret)`` in
    a simulation) the site signs its keys and its survivor set, and refuses neighbours' keys and
    unmask requests that lack valid signatures: protection against a deviating server, not only
    an honest-but-curious one.
    """

    def mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if RECORD not in msg.content.config_records:
            if require_secagg:
                return Message(Error(code=ERROR_CODE, reason=f"secagg: {REFUSED}"), reply_to=msg)
            return call_next(msg, context)
        identity = identity_of(context.node_id) if identity_of is not None else None
        return _answer_stage(msg, context, call_next, identity)

    mod.__name__ = mod.__qualname__ = "secagg_mod" if require_secagg else "secagg_or_plain_mod"
    return mod


def _answer_stage(
    msg: Message, context: Context, call_next: ClientAppCallable, identity: SiteIdentity | None
) -> Message:
    """Answer one SecAgg+ stage for this site (the message carries the ``"secagg"`` record)."""
    request: Payload = dict(msg.content.config_records[RECORD])
    stage = request.get("stage")
    clear: dict[str, Any] = {}
    try:
        if stage == "advertise":
            state, reply = client.advertise(context.node_id, request, identity)
        else:
            if STATE_KEY not in context.state.config_records:
                raise ValueError(f"stage {stage!r} before advertise: no round state")
            blob = context.state.config_records[STATE_KEY]["blob"]
            state = client.ClientState.from_bytes(blob)  # type: ignore[arg-type]
            if stage == "share":
                state, reply = client.share(state, request, identity)
            elif stage == "collect":
                client.check_collect(state, request)
                t0 = time.perf_counter()
                arrays, weight, clear = _train(msg, context, call_next, request)
                t1 = time.perf_counter()
                encoded = state.round_setup().encode(arrays, weight)
                t2 = time.perf_counter()
                state, reply = client.mask(state, request, encoded)
                reply.update(t_train=t1 - t0, t_encode=t2 - t1)
            elif stage == "consist":
                state, reply = client.consist(state, request, identity)
            elif stage == "unmask":
                state, reply = client.unmask(state, request, identity)
            else:
                raise ValueError(f"unknown SecAgg stage {stage!r}")
    except ValueError as err:
        return Message(Error(code=ERROR_CODE, reason=f"secagg {stage}: {err}"), reply_to=msg)
    context.state.config_records[STATE_KEY] = ConfigRecord({"blob": state.to_bytes()})
    content = RecordDict()
    if "masked" in reply:
        t0 = time.perf_counter()
        content[MASKED] = ArrayRecord({"masked": masked_array(reply.pop("masked"))})
        reply["t_serialize"] = time.perf_counter() - t0
    if clear:
        content[CLEAR] = MetricRecord(clear)
    content[RECORD] = ConfigRecord(reply)
    return Message(content, reply_to=msg)


secagg_mod: Mod = make_secagg_mod(require_secagg=True)
"""The fail-closed mod: every TRAIN message must be a well-formed ssl-fed SecAgg stage."""
