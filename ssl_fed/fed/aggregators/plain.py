"""``aggregation=plain``: no secure aggregation; the server sees every delta (comparison only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssl_fed.fed.aggregators.base import Aggregator, register_aggregator

if TYPE_CHECKING:
    from flwr.app import RecordDict
    from flwr.serverapp import Grid

    from ssl_fed.fed.layout import RoundOutcome
    from ssl_fed.fed.rounds import SiteRounds


@register_aggregator
class PlainAggregator(Aggregator):
    """Average the checked deltas in the clear (:func:`ssl_fed.fed.plain.aggregate_plain`)."""

    name = "plain"
    label = "off"

    def aggregate_round(
        self, grid: Grid, node_ids: list[int], content: RecordDict, rounds: SiteRounds, rnd: int
    ) -> RoundOutcome:
        """Send plain train messages and average the valid replies."""
        from ssl_fed.fed.plain import aggregate_plain

        return aggregate_plain(grid, rounds, node_ids, content, rnd)
