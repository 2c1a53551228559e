"""The site guard: only declared arrays and whitelisted scalars leave; everything else raises."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat

from ssl_fed.fed.arrays import ArraySpec
from ssl_fed.fed.guard import GuardError, allowed_fit_metrics, make_guard_mod

SPECS = [ArraySpec("encoder.w", (2, 3), "float32"), ArraySpec("encoder.b", (3,), "float32")]
ALLOWED = allowed_fit_metrics(["rotation"])


def _incoming(kind: str = MessageType.TRAIN) -> Message:
    meta = Metadata(1, "m1", 0, 1, "", "1", time.time(), 60.0, kind)
    return Message(content=RecordDict(), metadata=meta)


def _fit_reply(msg: Message, arrays: list[np.ndarray], metrics: dict, weight: int = 1) -> Message:
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), weight, metrics)
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


def _good() -> list[np.ndarray]:
    return [np.zeros((2, 3), np.float32), np.ones(3, np.float32)]


def _run(make_reply: Callable[[Message], Message], kind: str = MessageType.TRAIN) -> Message:
    guard = make_guard_mod(lambda c: SPECS, lambda c: ALLOWED)
    msg = _incoming(kind)
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    return guard(msg, ctx, lambda m, c: make_reply(m))


def test_declared_reply_passes() -> None:
    reply = _run(lambda m: _fit_reply(m, _good(), {"loss-rotation": 1.2, "epsilon": 3.0}))
    assert "fitres.parameters" in reply.content.array_records


@pytest.mark.parametrize(
    "arrays, metrics, weight",
    [
        ([*_good(), np.zeros(1, np.float32)], {}, 1),  # an extra array
        ([np.zeros((3, 2), np.float32), np.ones(3, np.float32)], {}, 1),  # wrong shape
        ([np.zeros((2, 3), np.float64), np.ones(3, np.float32)], {}, 1),  # wrong dtype
        ([np.full((2, 3), np.nan, np.float32), np.ones(3, np.float32)], {}, 1),  # NaN
        ([np.zeros((2, 3), np.float32), np.full(3, np.inf, np.float32)], {}, 1),  # Inf
        (_good(), {"num-images": 311.0}, 1),  # a metric not on the whitelist
        (_good(), {"loss-rotation": "path/to/img.png"}, 1),  # a string smuggled as a metric
        (_good(), {"epsilon": float("nan")}, 1),  # a non-finite metric
        (_good(), {}, 311),  # the weight would reveal the data size
    ],
)
def test_undeclared_content_is_dropped(arrays: list, metrics: dict, weight: int) -> None:
    with pytest.raises(GuardError, match="guard"):
        _run(lambda m: _fit_reply(m, arrays, metrics, weight))


def test_extra_record_is_dropped() -> None:
    def reply(m: Message) -> Message:
        out = _fit_reply(m, _good(), {})
        out.content.array_records["embeddings"] = ArrayRecord([np.zeros(4, np.float32)])
        return out

    with pytest.raises(GuardError):
        _run(reply)


def test_handler_error_text_never_leaves() -> None:
    def boom(m: Message) -> Message:
        raise ValueError("/secret/site/images/patient_17.png is unreadable")

    with pytest.raises(GuardError) as err:
        _run(boom)
    assert "patient" not in str(err.value)
    assert "ValueError" in str(err.value)


def test_query_reply_only_carries_can_train_and_site() -> None:
    ok = lambda m: Message(  # noqa: E731
        RecordDict({"budget": MetricRecord({"can-train": 1, "site": 2})}), reply_to=m
    )
    assert _run(ok, MessageType.QUERY).content.metric_records["budget"]["can-train"] == 1
    leaky = lambda m: Message(  # noqa: E731
        RecordDict({"budget": MetricRecord({"can-train": 1, "num-images": 120})}), reply_to=m
    )
    with pytest.raises(GuardError):
        _run(leaky, MessageType.QUERY)
    extra = lambda m: Message(  # noqa: E731
        RecordDict({"budget": MetricRecord({"can-train": 1}), "x": ConfigRecord({"p": "a"})}),
        reply_to=m,
    )
    with pytest.raises(GuardError):
        _run(extra, MessageType.QUERY)
