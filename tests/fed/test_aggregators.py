"""A new aggregator is one registered class; the base loop drives it round by round."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ssl_fed.config import load_config
from ssl_fed.fed.aggregators import base
from ssl_fed.fed.layout import RoundOutcome


class FakeGrid:
    """Two connected nodes; nothing is ever sent (the toy aggregator does not use the grid)."""

    def get_node_ids(self) -> list[int]:
        return [7, 3]


class FakeRounds:
    """Records the calls the loop makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def plan_round(self, grid: Any, nodes: list[int], rnd: int) -> tuple[list[int], str]:
        self.calls.append(("plan", nodes, rnd))
        return nodes[:1], f"rec{rnd}"

    def apply(self, rec: str, outcome: RoundOutcome) -> None:
        assert outcome.mean is not None
        self.calls.append(("apply", rec, outcome.completed, float(outcome.mean[0][0])))

    def record(self, rec: str) -> None:
        self.calls.append(("record", rec))


def test_a_registered_toy_aggregator_runs_through_the_base_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: one class with a name, a label and aggregate_round; registered in a scratch registry
    monkeypatch.setattr(base, "AGGREGATORS", dict(base.AGGREGATORS))

    @base.register_aggregator
    class EchoAggregator(base.Aggregator):
        name, label = "echo", "echo-label"

        def configure_round(self, rounds: Any, rnd: int) -> Any:
            return {"round": rnd}

        def aggregate_round(
            self, grid: Any, node_ids: list[int], content: Any, rounds: Any, rnd: int
        ) -> RoundOutcome:
            return RoundOutcome([np.full(1, content["round"], np.float32)], node_ids, [])

    cfg = load_config(["aggregation=plain", "aggregation.query_timeout=1"])
    rounds = FakeRounds()
    # Execute: rounds 3..4 (a resume after round 2)
    agg = base.aggregator_class("echo")(cfg)
    agg.start(FakeGrid(), None, rounds, 3, 4)  # type: ignore[arg-type]
    # Assert: plan -> aggregate -> apply -> record, per round, with the round's own content
    assert "echo" in base.names() and agg.label == "echo-label" and agg.client_mods() == []
    assert rounds.calls == [
        ("plan", [3, 7], 3),
        ("apply", "rec3", [3], 3.0),
        ("record", "rec3"),
        ("plan", [3, 7], 4),
        ("apply", "rec4", [3], 4.0),
        ("record", "rec4"),
    ]
