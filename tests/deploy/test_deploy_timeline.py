"""The deployed-round timeline parser (benchmarks/deploy_timeline.py) on a hand-written log."""

from __future__ import annotations

import pytest

from benchmarks.deploy_timeline import phases, summary

LOG = """\
\x1b[94mDEBUG 2026-12-02 05:20:20,000\x1b[0m:     Runtime.AcquireTask
INFO 2026-12-02 05:20:20,500:      Receiving: query message (ID: a)
INFO 2026-12-02 05:20:21,000:      Received successfully
INFO 2026-12-02 05:20:23,000:      Sending: query message (ID: b)
INFO 2026-12-02 05:20:23,250:      Sent successfully
INFO 2026-12-02 05:20:24,250:      Receiving: train message (ID: c)
INFO 2026-12-02 05:20:24,350:      Received successfully
INFO 2026-12-02 05:20:25,350:      Sending: train message (ID: d)
INFO 2026-12-02 05:20:25,850:      Sent successfully
"""


def test_phases_are_the_gaps_between_the_supernodes_four_lines() -> None:
    # Execute
    rows = phases(LOG)

    # Assert: hand-computed from the stamps above
    assert [r["type"] for r in rows] == ["query", "train"]
    assert rows[0]["pull"] == pytest.approx(0.5)
    assert rows[0]["clientapp"] == pytest.approx(2.0)
    assert rows[0]["push"] == pytest.approx(0.25)
    assert rows[0]["wait"] == pytest.approx(1.0)
    assert "wait" not in rows[1]  # no next message
    assert summary([LOG], skip_first=1) == pytest.approx(
        {"messages": 1.0, "pull": 0.1, "clientapp": 1.0, "push": 0.5, "wait": float("nan")},
        nan_ok=True,
    )
