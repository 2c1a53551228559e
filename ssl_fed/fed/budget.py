"""Can a site afford the next round? The answer a site gives the server's budget query.

The server asks every node before it samples a round (one small ``query`` message); a site answers
``can-train = 1`` only if its own ledger affords the round's planned training. The site, not the
server, owns the budget (DESIGN §1): the answer is recomputed from the site's ledger file, with the
σ and schedule that :func:`~ssl_fed.train.local.train_local` would use.

Notes
-----
A site that already has a ledger entry for ``(run_id, round)`` answers 0. That entry means the
round was started (and charged) before, e.g. by a run that was killed mid-round: retraining would
release a second update computed on the same data that the ledger charges only once, and charging
again would count the round twice. Declining the repeated round is the only choice that keeps the
ledger equal to what was released; the site rejoins from the next round on. Because σ is
calibrated for ``sim.rounds`` trainings and each round charges at most once, a site's ε stays
within its target over the whole run.
"""

from __future__ import annotations

import logging

from ssl_fed.config import RootConfig
from ssl_fed.privacy.engine import build_engine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.train.local import schedule_for

log = logging.getLogger("ssl_fed.fed.budget")


def already_charged(ledger: PrivacyLedger, run_id: str, round: int) -> bool:
    """Return whether the ledger holds an entry for this run's ``round``."""
    return any(e.round == round for e in ledger.entries_for(run_id))


def can_train(
    cfg: RootConfig, ledger: PrivacyLedger | None, n: int, run_id: str, round: int
) -> bool:
    """Whether the site may train ``round`` of ``run_id`` on ``n`` images (logged at the site).

    The answer is the privacy engine's (:meth:`~ssl_fed.privacy.engine.PrivacyEngine.decide`).
    """
    engine = build_engine(cfg, ledger, schedule_for(cfg, n), n=n, run_id=run_id)
    decision = engine.decide(round)
    if not decision.ok:
        log.warning("declining round %d: %s", round, decision.reason)
    return decision.ok
