"""The guard lets the declared drift alarm leave, and nothing else the monitor computes."""

import time

import numpy as np
import pytest
from flwr.app import Context, Message, MessageType, Metadata, RecordDict

from ssl_fed.fed.arrays import ArraySpec
from ssl_fed.fed.guard import GuardError, allowed_fit_metrics, make_guard_mod
from ssl_fed.fed.messages import train_reply
from ssl_fed.monitor import DriftMonitor, FeatureMap, build_sketch

SPECS = [ArraySpec("encoder.w", (2, 3), "float32")]


def _send(metrics: dict, drift_alarm: bool) -> Message:
    meta = Metadata(1, "m1", 0, 1, "", "1", time.time(), 60.0, MessageType.TRAIN)
    msg = Message(content=RecordDict(), metadata=meta)
    allowed = allowed_fit_metrics(drift_alarm=drift_alarm)
    guard = make_guard_mod(lambda c: SPECS, lambda c: allowed, lambda c: "message")
    reply = train_reply([np.zeros((2, 3), np.float32)], ["encoder.w"], metrics, "message")
    ctx = Context("r", 1, {}, {}, RecordDict(), {})
    return guard(msg, ctx, lambda m, c: Message(reply, reply_to=m))


def _reading(release: str):
    rng = np.random.default_rng(0)
    sketch = build_sketch(FeatureMap(4), rng.normal(size=(20, 4)), window=5, draws=5)
    mon = DriftMonitor(sketch, release=release, mechanism="rr", charge=lambda e, m: None, rng=rng)
    return mon.observe(1, rng.normal(size=(5, 4)) + 3)


def test_the_released_alarm_passes_when_the_site_declared_it() -> None:
    # Prepare: what a dp-alarm monitor puts in the reply
    out = _reading("dp-alarm").outgoing()
    # Execute
    reply = _send({"epsilon": 1.0, **out}, drift_alarm=True)
    # Assert: exactly one 0/1 scalar
    assert set(out) == {"drift-alarm"} and out["drift-alarm"] in (0, 1)
    assert reply.content.metric_records["metrics"]["drift-alarm"] == out["drift-alarm"]


@pytest.mark.parametrize(
    "metrics, declared",
    [
        ({"drift-alarm": 1}, False),  # the site's policy did not declare it
        ({"drift-statistic": 0.31}, True),  # the raw statistic never leaves
        ({"drift-alarm": 2}, True),  # not a bit
        ({"drift-alarm": 0.5}, True),  # not an integer
    ],
)
def test_anything_else_from_the_monitor_is_dropped(metrics: dict, declared: bool) -> None:
    with pytest.raises(GuardError):
        _send(metrics, drift_alarm=declared)


def test_a_local_policy_sends_nothing_from_the_monitor() -> None:
    assert _reading("local").outgoing() == {}
