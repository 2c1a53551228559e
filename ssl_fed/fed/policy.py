"""Enforce a site's policy on one round: the checks that need its ledger and its data size.

:func:`ssl_fed.privacy.policy.check_run` is pure and sees only the run config. Two terms of a
site's policy depend on what the site itself would do: the noise multiplier it would calibrate
(from the run's target ε, its ledger and its data) and the ε this run has already spent there.
:func:`check_round` recomputes both with the same functions training uses
(the privacy engine, :mod:`ssl_fed.privacy.engine`), so the
site declines before anything is trained or charged. Calibrating σ costs seconds, so a policy
with no σ floor and no per-run cap below the ledger's budget skips it (the ledger's own check is
then the binding one).

Notes
-----
Guarantee: a round that passes :func:`site_refusals` is trained with σ >= the policy's minimum,
and after it the ε of this run's entries in the ledger (at the policy's δ, with the run's
accountant) is at most ``policy.run_cap``; the lifetime budget is the ledger's own check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ssl_fed.config import RootConfig
from ssl_fed.privacy.accounting import epsilon_for_history
from ssl_fed.privacy.engine import build_engine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.policy import Refusal, SitePolicy, check_run
from ssl_fed.train.local import schedule_for

log = logging.getLogger("ssl_fed.fed.policy")


class PolicyDeclinedError(RuntimeError):
    """The site's policy refuses this run or round; nothing is trained, charged or sent."""


def check_round(
    cfg: RootConfig, policy: SitePolicy, ledger: PrivacyLedger | None, n: int, run_id: str
) -> list[Refusal]:
    """Refusals for one more round of ``run_id`` on ``n`` images (``cfg``: the site's view)."""
    if ledger is None:
        return []  # no ledger: the site's privacy engine charges none
    if policy.min_noise_multiplier <= 0 and ledger.budget <= policy.run_cap:
        return []  # no σ floor, and the ledger's own budget check is the tighter ε bound
    engine = build_engine(cfg, ledger, schedule_for(cfg, n), n=n, run_id=run_id)
    try:
        planned = engine.ledger_step()
    except ValueError:
        return []  # σ cannot be calibrated: the ledger's own check declines the round
    if planned is None:
        return []  # the engine records nothing (privacy off)
    sigma = planned[0]
    out: list[Refusal] = []
    if sigma < policy.min_noise_multiplier:
        out.append(Refusal("noise", f"σ={sigma:.4g} < minimum {policy.min_noise_multiplier}"))
    history = [e.step for e in ledger.entries_for(run_id)]
    history.append(planned)
    spent = epsilon_for_history(history, policy.delta, cfg.privacy.accountant)
    if spent > policy.run_cap:
        out.append(Refusal("epsilon-run", f"this run would reach ε={spent:.4g} > {policy.run_cap}"))
    return out


def site_refusals(
    run_cfg: RootConfig,
    site_cfg: RootConfig,
    policy: SitePolicy,
    round_inputs: Callable[[], tuple[PrivacyLedger | None, int]],
    run_id: str,
) -> list[Refusal]:
    """All refusals for ``run_id``, logged at the site.

    ``run_cfg`` is the config exactly as the server sent it (checked by
    :func:`~ssl_fed.privacy.policy.check_run`); ``site_cfg`` is the site's view of it (its own
    budget applied, :func:`ssl_fed.site.node.site_config`), which decides σ for :func:`check_round`.
    ``round_inputs()`` opens the site's ledger and counts its images; it is called only when the
    run config passes, so a refused run never opens (or creates) a ledger.
    """
    refusals = check_run(run_cfg, policy)
    if not refusals:
        refusals = check_round(site_cfg, policy, *round_inputs(), run_id)
    for r in refusals:
        log.warning("declined: policy: run %s: %s", run_id, r)
    return refusals
