"""Shared builders for SecAgg+ tests: seeded updates, exact means, an in-process Grid."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, Metadata, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from numpy.typing import NDArray

from ssl_fed.secagg.setup import ArraySpec

SPEC: ArraySpec = [("w", (3, 4)), ("b", (5,))]
Inputs = dict[int, tuple[dict[str, NDArray[np.float64]], float]]


def site_inputs(ids: list[int], seed: int = 0, scale: float = 1.0) -> Inputs:
    """Updates in [-2 scale, 2 scale] (inside the default clip range 8) with weights 1..99."""
    rng = np.random.default_rng(seed)
    return {
        i: (
            {n: rng.uniform(-2 * scale, 2 * scale, size=s) for n, s in SPEC},
            int(rng.integers(1, 100)),
        )
        for i in ids
    }


def exact_mean(inputs: Inputs, ids: list[int]) -> dict[str, NDArray[np.float64]]:
    """The float64 weighted mean over ``ids``."""
    total = sum(inputs[i][1] for i in ids)
    return {n: sum(inputs[i][0][n] * inputs[i][1] for i in ids) / total for n, _ in SPEC}


def max_err(got: dict[str, NDArray[np.float64]], want: dict[str, NDArray[np.float64]]) -> float:
    """Largest absolute coordinate difference."""
    return max(float(np.abs(got[n] - want[n]).max()) for n in want)


SiteApp = Callable[[Message, Context], Message]


@pytest.fixture
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests build Flower Messages outside a Flower process (the ServerApp's identity)."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


class LoopbackGrid:
    """A Grid that delivers each message to an in-process site app at once (no Flower, no Ray).

    Each node keeps one :class:`Context` across messages, as a SuperNode does within a run, so
    the SecAgg mod's round state survives between stages. Only the calls the SecAgg driver and
    the server rounds make are implemented.
    """

    def __init__(self, sites: dict[int, SiteApp]) -> None:
        self.sites = sites
        self.contexts = {
            n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={})
            for n in sites
        }
        self.replies: dict[str, Message] = {}
        self.delivered: dict[int, list[Message]] = {n: [] for n in sites}

    def get_node_ids(self) -> list[int]:
        return sorted(self.sites)

    def push_messages(self, messages: list[Message]) -> list[str]:
        ids = []
        for msg in messages:
            mid, dst = uuid.uuid4().hex, msg.metadata.dst_node_id
            meta = Metadata(1, mid, 0, dst, "", msg.metadata.group_id, time.time(), 60.0,
                            msg.metadata.message_type)  # fmt: skip
            incoming = Message(content=msg.content, metadata=meta)
            self.delivered[dst].append(incoming)
            self.replies[mid] = self.sites[dst](incoming, self.contexts[dst])
            ids.append(mid)
        return ids

    def pull_messages(self, ids: set[str]) -> list[Message]:
        return [self.replies.pop(i) for i in list(ids) if i in self.replies]


def delta_handler(delta: dict[str, NDArray[np.float32]]) -> SiteApp:
    """A site's train handler that replies ``delta`` with weight 1 (the message layout)."""

    def handler(msg: Message, context: Context) -> Message:
        arrays = ArrayRecord({k: Array(np.asarray(v, np.float32)) for k, v in delta.items()})
        content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 1})})
        return Message(content, reply_to=msg)

    return handler
