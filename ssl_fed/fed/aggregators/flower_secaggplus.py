"""``aggregation=flower-secaggplus``: Flower 1.42's stock SecAgg+, kept for comparison.

Its masks come from 32-bit seeds, below cryptographic strength (issue 5). It runs only on
Flower's legacy stack (``SecAggPlusWorkflow`` drives ``configure_fit`` / ``aggregate_fit`` of a
legacy strategy), so this aggregator replaces the Message-API loop (:meth:`start`) with
:func:`ssl_fed.fed.legacy.run_legacy_rounds` over :class:`ssl_fed.fed.legacy.SiteDeltaStrategy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssl_fed.fed.aggregators.base import Aggregator, IdentityOf, register_aggregator

if TYPE_CHECKING:
    from flwr.app import Context, RecordDict
    from flwr.clientapp.typing import Mod
    from flwr.serverapp import Grid

    from ssl_fed.fed.layout import RoundOutcome
    from ssl_fed.fed.rounds import SiteRounds


@register_aggregator
class FlowerSecAggPlusAggregator(Aggregator):
    """Flower's ``SecAggPlusWorkflow`` (server) and ``secaggplus_mod`` (site)."""

    name = "flower-secaggplus"
    label = "flwr-secaggplus"
    reply_layout = "legacy"

    def quantization_bound(self) -> float:
        """``clipping_range / quantization_range`` (2^22 levels: about 1.2e-7 for 0.5)."""
        a = self.cfg.aggregation
        return a.clipping_range / a.quantization_range

    def client_mods(self, identity_of: IdentityOf | None = None) -> list[Mod]:
        """Flower's ``secaggplus_mod`` (it has no site identities)."""
        from flwr.client.mod import secaggplus_mod

        return [secaggplus_mod]

    def aggregate_round(
        self, grid: Grid, node_ids: list[int], content: RecordDict, rounds: SiteRounds, rnd: int
    ) -> RoundOutcome:
        """Not used: the legacy workflow aggregates (:meth:`SiteDeltaStrategy.aggregate_fit`)."""
        raise NotImplementedError("flower-secaggplus rounds run through start()")

    def start(
        self, grid: Grid, context: Context, rounds: SiteRounds, first: int, last: int
    ) -> None:
        """Run rounds ``first..last`` through Flower's legacy SecAgg+ workflow."""
        from ssl_fed.fed.backoff_grid import BackoffGrid
        from ssl_fed.fed.legacy import SiteDeltaStrategy, run_legacy_rounds

        strategy = SiteDeltaStrategy(rounds, grid, round_offset=first - 1)
        fast = BackoffGrid(grid)  # the stock workflow's exchanges poll with back-off, not 3 s
        run_legacy_rounds(fast, context, strategy, last - first + 1, self.cfg.aggregation)
