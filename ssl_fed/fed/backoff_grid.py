"""A ``Grid`` whose ``send_and_receive`` polls with back-off, for Flower code we do not own.

flwr 1.42's deployed grid (``flwr.superlink.grid.http_grid``) sleeps a fixed 3 s between pulls in
``send_and_receive``, so every exchange of Flower's stock ``SecAggPlusWorkflow`` (four or five per
round) ends on a 3 s boundary. ssl-fed's own exchanges already poll with back-off
(:func:`ssl_fed.fed.secagg_driver.send_and_receive`); wrapping the grid handed to the stock
workflow gives it the same timing without touching Flower: every other method forwards unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from ssl_fed.fed.secagg_driver import send_and_receive


class BackoffGrid(Grid):
    """Forward to ``inner``; replace only ``send_and_receive``.

    Its pulls are spaced 10% of the time already waited apart, within 5-100 ms
    (:func:`ssl_fed.fed.secagg_driver.send_and_receive`).
    """

    def __init__(self, inner: Grid) -> None:
        self.inner = inner

    @property
    def run(self) -> Run:
        """The run of the wrapped grid."""
        return self.inner.run

    def set_run(self, run: Run) -> None:
        """Forward."""
        self.inner.set_run(run)

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Forward."""
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        """Forward."""
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Forward."""
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Forward."""
        return self.inner.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push, then pull with back-off until every reply is in or ``timeout`` (None: forever)."""
        wait = math.inf if timeout is None else timeout
        return send_and_receive(self.inner, list(messages), wait)
