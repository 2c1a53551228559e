"""Hostile sites: malformed replies get that site rejected; the server never crashes or leaks."""

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_fed.secagg import AggregateResult, SecAggConfig, Skipped, run_local_round

from .helpers import SPEC, exact_mean, max_err, site_inputs

IDS = [11, 22, 33, 44, 55]
HOSTILE = 33
STAGES = ["advertise", "share", "collect", "unmask"]

junk = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=80),
    st.lists(st.binary(max_size=60), max_size=6),
    st.builds(
        lambda n, dt: np.zeros(n, dtype=dt),
        st.integers(0, 40),
        st.sampled_from([np.uint32, np.uint64, np.int64, np.float32]),
    ),
)


def _mutate(p: dict[str, Any], key: str, value: Any, mode: str) -> dict[str, Any]:
    q = dict(p)
    if mode == "delete":
        q.pop(key, None)
    elif mode == "claim":
        q["node_id"] = (22).to_bytes(8, "big")
    elif mode == "dup" and isinstance(q.get(key), list) and q[key]:
        q[key] = q[key][:1] * len(q[key])
    else:
        q[key] = value
    return q


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stage=st.sampled_from(STAGES),
    key_pick=st.integers(0, 20),
    value=junk,
    mode=st.sampled_from(["replace", "delete", "claim", "dup"]),
)
def test_malformed_reply_rejects_only_that_site(
    stage: str, key_pick: int, value: Any, mode: str
) -> None:
    # Prepare
    inputs = site_inputs(IDS, seed=9)
    seen: list[str] = []

    def tamper(s: str, nid: int, p: dict[str, Any]) -> dict[str, Any]:
        if s != stage or nid != HOSTILE:
            return p
        key = sorted(p)[key_pick % len(p)]
        seen.append(key)
        return _mutate(p, key, value, mode)

    # Execute
    res = run_local_round(inputs, SPEC, SecAggConfig(), tamper=tamper)
    # Assert: either the round still aggregates correctly (over the honest survivors, or
    # everyone if the tampering was harmless), or it skips cleanly; never a crash.
    if isinstance(res, Skipped):
        assert res.reason
        return
    assert isinstance(res, AggregateResult)
    assert set(res.survivors) >= set(IDS) - {HOSTILE}
    assert max_err(res.arrays, exact_mean(inputs, res.survivors)) <= res.error_bound + 1e-12


def test_site_claiming_another_id_is_rejected() -> None:
    inputs = site_inputs(IDS)

    def tamper(s: str, nid: int, p: dict[str, Any]) -> dict[str, Any]:
        return _mutate(p, "node_id", None, "claim") if nid == HOSTILE and s == "share" else p

    res = run_local_round(inputs, SPEC, SecAggConfig(), tamper=tamper)
    assert isinstance(res, AggregateResult)
    assert HOSTILE in res.rejected and "another site" in res.rejected[HOSTILE]
    assert res.survivors == [i for i in IDS if i != HOSTILE]


def test_out_of_range_and_duplicate_shares_are_rejected() -> None:
    inputs = site_inputs(IDS)

    def tamper(s: str, nid: int, p: dict[str, Any]) -> dict[str, Any]:
        if nid != HOSTILE or s != "unmask" or not p["b_shares"]:
            return p
        sh = bytearray(p["b_shares"][0])
        sh[:4] = (99).to_bytes(4, "little")
        return dict(p, b_shares=[bytes(sh), *p["b_shares"][1:]])

    res = run_local_round(inputs, SPEC, SecAggConfig(), tamper=tamper)
    assert isinstance(res, AggregateResult)
    assert "wrong index" in res.rejected[HOSTILE]
    assert max_err(res.arrays, exact_mean(inputs, IDS)) <= res.error_bound + 1e-12
