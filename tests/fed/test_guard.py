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
from ssl_fed.fed.messages import train_reply

SPECS = [ArraySpec("encoder.w", (2, 3), "float32"), ArraySpec("encoder.b", (3,), "float32")]
ALLOWED = allowed_fit_metrics()


def _incoming(kind: str = MessageType.TRAIN) -> Message:
    meta = Metadata(1, "m1", 0, 1, "", "1", time.time(), 60.0, kind)
    return Message(content=RecordDict(), metadata=meta)


def _fit_reply(msg: Message, arrays: list[np.ndarray], metrics: dict, weight: int = 1) -> Message:
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), weight, metrics)
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


def _good() -> list[np.ndarray]:
    return [np.zeros((2, 3), np.float32), np.ones(3, np.float32)]


def _run(
    make_reply: Callable[[Message], Message],
    kind: str = MessageType.TRAIN,
    layout: str = "legacy",
) -> Message:
    guard = make_guard_mod(lambda c: SPECS, lambda c: ALLOWED, lambda c: layout)
    msg = _incoming(kind)
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    return guard(msg, ctx, lambda m, c: make_reply(m))


def test_declared_reply_passes() -> None:
    reply = _run(lambda m: _fit_reply(m, _good(), {"epsilon": 3.0}))
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
        (_good(), {"epsilon": "path/to/img.png"}, 1),  # a string smuggled as a metric
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


NAMES = [s.name for s in SPECS]


def _msg_reply(msg: Message, arrays: list[np.ndarray], metrics: dict, names: list[str]) -> Message:
    return Message(train_reply(arrays, names, metrics, "message"), reply_to=msg)


def test_message_layout_declared_reply_passes() -> None:
    # Execute: the layout ssl-fed's SecAgg and plain rounds use
    reply = _run(
        lambda m: _msg_reply(m, _good(), {"epsilon": 3.0}, NAMES),
        layout="message",
    )
    # Assert
    assert list(reply.content.array_records["arrays"]) == NAMES
    assert reply.content.metric_records["metrics"]["num-examples"] == 1


@pytest.mark.parametrize(
    "arrays, metrics, names",
    [
        (_good(), {}, ["encoder.b", "encoder.w"]),  # names swapped
        (_good(), {}, ["encoder.w", "encoder.x"]),  # an undeclared name
        ([np.zeros((2, 3), np.float32), np.full(3, np.nan, np.float32)], {}, NAMES),  # NaN
        ([np.zeros((2, 3), np.float64), np.ones(3, np.float32)], {}, NAMES),  # wrong dtype
        (_good(), {"num-images": 311.0}, NAMES),  # not whitelisted
        (_good(), {"epsilon": float("inf")}, NAMES),  # non-finite
        (_good(), {"epsilon": [1.0, 2.0]}, NAMES),  # not a scalar
    ],
)
def test_message_layout_undeclared_content_is_dropped(
    arrays: list, metrics: dict, names: list[str]
) -> None:
    with pytest.raises(GuardError, match="guard"):
        _run(lambda m: _msg_reply(m, arrays, metrics, names), layout="message")


@pytest.mark.parametrize("weight", [311, 1.0, 0])
def test_message_layout_weight_must_be_exactly_one(weight: object) -> None:
    def reply(m: Message) -> Message:
        out = _msg_reply(m, _good(), {}, NAMES)
        out.content.metric_records["metrics"]["num-examples"] = weight  # type: ignore[assignment]
        return out

    with pytest.raises(GuardError):
        _run(reply, layout="message")


def test_layout_comes_from_the_config_not_the_reply() -> None:
    # A legacy-layout reply in a message-layout run is dropped, and vice versa
    with pytest.raises(GuardError):
        _run(lambda m: _fit_reply(m, _good(), {}), layout="message")
    with pytest.raises(GuardError):
        _run(lambda m: _msg_reply(m, _good(), {}, NAMES), layout="legacy")
