"""The guard range-checks every clear scalar and checks each Array's raw record, not only numpy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
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
from ssl_fed.fed.guard import (
    GuardError,
    allowed_fit_metrics,
    check_arrays,
    check_query_reply,
    check_raw_arrays,
    check_scalars,
    make_guard_mod,
)

SPECS = [ArraySpec("encoder.w", (2, 3), "float32")]
ALLOWED = allowed_fit_metrics()
BUDGET = 8.0


@pytest.mark.parametrize(
    "metrics",
    [
        {"epsilon": 2.0**62},  # far above the budget
        {"epsilon": -5.0},
        {"epsilon": 8.001},
        {"epsilon-remaining": 9.0},
        {"epsilon-remaining": -0.1},
    ],
)
def test_an_out_of_range_scalar_is_refused(metrics: dict[str, float]) -> None:
    with pytest.raises(GuardError, match="outside"):
        check_scalars(metrics, ALLOWED, BUDGET)


def test_in_range_scalars_pass_including_the_ends() -> None:
    check_scalars({"epsilon": 8.0, "epsilon-remaining": 0.0}, ALLOWED, 8.0)
    check_scalars({"epsilon": 0.0, "epsilon-remaining": 8.0}, ALLOWED, 8.0)


def test_without_a_budget_epsilon_must_still_be_non_negative() -> None:
    # The server does not know a site's budget: it checks the lower end only
    check_scalars({"epsilon": 20.0}, ALLOWED)
    with pytest.raises(GuardError, match="outside"):
        check_scalars({"epsilon": -5.0}, ALLOWED)


def test_a_whitelisted_key_without_a_declared_range_is_refused() -> None:
    with pytest.raises(GuardError, match="no declared range"):
        check_scalars({"num-images": 3.0}, {"num-images"})


def _query_reply(values: dict[str, Any]) -> RecordDict:
    return RecordDict({"budget": MetricRecord(values)})


@pytest.mark.parametrize(
    "values",
    [
        {"can-train": 2, "site": 0},
        {"can-train": -1, "site": 0},
        {"can-train": 1.0, "site": 0},  # a float where only 0 or 1 makes sense
        {"can-train": 1, "site": 10**9},  # a site label is a small integer
        {"can-train": 1, "site": 0.5},
        {"can-train": 0, "site": 0, "declined": 99},
    ],
)
def test_query_scalars_are_range_checked(values: dict[str, Any]) -> None:
    with pytest.raises(GuardError):
        check_query_reply(_query_reply(values))


def test_a_well_formed_query_reply_passes() -> None:
    check_query_reply(_query_reply({"can-train": 0, "site": -1, "declined": 20}))
    check_query_reply(_query_reply({"can-train": 1, "site": 65535}))


def _good() -> Array:
    return Array(np.ones((2, 3), np.float32))


def _forged(**fields: Any) -> Array:
    base = _good()
    kw = {"dtype": base.dtype, "shape": base.shape, "stype": base.stype, "data": base.data}
    return Array(**(kw | fields))


@pytest.mark.parametrize(
    "array, why",
    [
        (_forged(dtype="int64"), "record says"),  # the dtype string lies about the data
        (_forged(shape=(3, 2)), "record says"),
        (_forged(stype="torch.Tensor"), "record says"),
        (_forged(data=_good().data + b"secret"), "raw bytes"),  # trailing bytes
        (_forged(data=_good().data[:-4]), "raw bytes"),
    ],
)
def test_a_forged_array_record_is_refused(array: Array, why: str) -> None:
    with pytest.raises(GuardError, match=why):
        check_raw_arrays([array], SPECS)


def test_the_decoded_array_alone_would_not_show_the_forgery() -> None:
    # Why the raw record is checked: numpy decoding ignores the dtype string and trailing bytes
    for forged in (_forged(dtype="int64"), _forged(data=_good().data + b"secret")):
        check_arrays([forged.numpy()], SPECS)  # passes
        with pytest.raises(GuardError):
            check_raw_arrays([forged], SPECS)


def test_trailing_bytes_are_refused_in_the_legacy_layout_too() -> None:
    legacy = compat.fitres_to_recorddict(
        FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.ones((2, 3), np.float32)]), 1, {}),
        keep_input=True,
    )
    arr = next(iter(legacy.array_records["fitres.parameters"].values()))
    check_raw_arrays([arr], SPECS, legacy=True)  # Flower's empty dtype/shape are accepted
    padded = Array(dtype=arr.dtype, shape=arr.shape, stype=arr.stype, data=arr.data + b"x")
    with pytest.raises(GuardError, match="raw bytes"):
        check_raw_arrays([padded], SPECS, legacy=True)
    with pytest.raises(GuardError, match="record says"):
        check_raw_arrays([arr], SPECS, legacy=False)


def test_the_guard_mod_bounds_epsilon_by_the_sites_budget() -> None:
    # Prepare: a guard for a site whose budget is 2
    guard = make_guard_mod(lambda c: SPECS, lambda c: ALLOWED, lambda c: "message", lambda c: 2.0)
    meta = Metadata(1, "m1", 0, 1, "", "1", time.time(), 60.0, MessageType.TRAIN)
    msg = Message(content=RecordDict(), metadata=meta)
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})

    def reply(epsilon: float) -> Message:
        content = RecordDict(
            {
                "arrays": ArrayRecord({"encoder.w": _good()}),
                "metrics": MetricRecord({"num-examples": 1, "epsilon": epsilon}),
            }
        )
        return Message(content, reply_to=msg)

    # Execute / Assert
    assert guard(msg, ctx, lambda m, c: reply(1.5)).content.metric_records["metrics"]["epsilon"]
    with pytest.raises(GuardError):
        guard(msg, ctx, lambda m, c: reply(3.0))
