"""The ClientApp's adapter to the site logic in :mod:`ssl_fed.site` (the only Flower part of it).

Everything a site does lives in :mod:`ssl_fed.site` (:mod:`~ssl_fed.site.node`: where its data
and state live; :mod:`~ssl_fed.site.rounds`: its privacy engine, budget answer and one round).
This module only keeps the heads that stay at the site between rounds in Flower's per-node
``Context.state`` (:data:`HEADS_RECORD`), and re-exports the site's names for
:mod:`ssl_fed.fed.clientapp`. The warm worker (:mod:`ssl_fed.deploy.worker`) keeps its heads in
a plain dict instead and calls :mod:`ssl_fed.site` directly.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, Context

from ssl_fed.config import RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.privacy.policy import SitePolicy
from ssl_fed.site.node import SiteInfo, declared_size, site_config, site_data, site_info
from ssl_fed.site.rounds import (
    SITE_METRICS_FILE,
    answer_budget_query,
    declared_update,
    record_round,
    site_ledger,
    train_site_round,
)

__all__ = [
    "HEADS_RECORD",
    "SITE_METRICS_FILE",
    "SiteInfo",
    "answer_budget_query",
    "declared_size",
    "declared_update",
    "record_round",
    "site_config",
    "site_data",
    "site_info",
    "site_ledger",
    "train_round",
]

HEADS_RECORD = "local-heads"
"""The ``Context.state`` record that keeps a site's local heads from one round to the next."""


def train_round(
    cfg: RootConfig,
    info: SiteInfo,
    received: list[fa.NDArray],
    context: Context,
    run_id: str,
    round: int,
    policy: SitePolicy | None = None,
) -> tuple[list[fa.NDArray], dict[str, float]]:
    """Train one round (:func:`~ssl_fed.site.rounds.train_site_round`); return (delta, scalars).

    The site's kept heads come from and go back to ``context.state`` (per node, across rounds);
    ``policy`` is the site's own (its drift monitor's release).
    """
    records = context.state.array_records
    kept = records[HEADS_RECORD].to_torch_state_dict() if HEADS_RECORD in records else None
    result = train_site_round(cfg, info, received, kept, run_id, round, policy)
    if result.heads is not None:
        records[HEADS_RECORD] = ArrayRecord(result.heads)
    return result.delta, result.scalars
