"""``aggregation=secagg`` (the default): ssl-fed's own SecAgg+ on Flower's Message API.

Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead", CCS 2020: the
server learns only the sum of the surviving sites' quantized deltas. The protocol is
:mod:`ssl_fed.secagg`; its config, validation and one round over the grid are
:mod:`ssl_fed.fed.secagg`; the site runs :func:`~ssl_fed.fed.secagg_mod.make_secagg_mod`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssl_fed.fed import secagg as fs
from ssl_fed.fed.aggregators.base import Aggregator, IdentityOf, register_aggregator

if TYPE_CHECKING:
    from flwr.app import RecordDict
    from flwr.clientapp.typing import Mod
    from flwr.serverapp import Grid

    from ssl_fed.config import RootConfig
    from ssl_fed.fed.layout import RoundOutcome
    from ssl_fed.fed.rounds import SiteRounds


@register_aggregator
class SecAggAggregator(Aggregator):
    """ssl-fed's SecAgg+: full-strength masks, signed keys when the sites hold identities."""

    name = "secagg"
    label = "ssl-fed-secagg+"

    @classmethod
    def check_config(cls, cfg: RootConfig) -> None:
        """At least 3 sites per round, and neighbours/threshold/bits valid for that many."""
        fs.check_secagg_config(cfg)

    def quantization_bound(self) -> float:
        """``clipping_range / (2^q - 1)`` for the ``q`` resolved for the expected sites."""
        return fs.quantization_bound(self.cfg)

    def client_mods(self, identity_of: IdentityOf | None = None) -> list[Mod]:
        """ssl-fed's fail-closed ``secagg_mod`` (signing when ``identity_of`` is given)."""
        from ssl_fed.fed.secagg_mod import make_secagg_mod

        return [make_secagg_mod(identity_of=identity_of)]

    def aggregate_round(
        self, grid: Grid, node_ids: list[int], content: RecordDict, rounds: SiteRounds, rnd: int
    ) -> RoundOutcome:
        """One SecAgg+ round over ``node_ids``: the survivors' mean delta, or why it skipped."""
        return fs.aggregate_secure(grid, node_ids, content, self.cfg.aggregation, rnd)
