"""Replay one aggregation round with malicious inputs, under each server-side defense.

Given every site's update of one round (honest sites: their honest delta; malicious sites: the
attack's output), return what the server would apply under five settings (:data:`VARIANTS`):

- ``plain+check``: ``aggregation=plain``; the server range-checks each update
  (``|x| <= c``, :func:`server.rounds.check_range`) and drops the ones outside.
- ``plain, no check``: the plain mean of every update.
- ``secagg+clip``: ssl-fed's SecAgg+ with honest encoders: the quantizer clips every value to
  ``[-c, c]``, the server checks the unmasked sum (:func:`ssl_fed.secagg.quantize.check_sum`).
- ``secagg raw+check``: the malicious sites write their own words, unclipped and wrapped modulo
  ``2^b`` (:mod:`ssl_fed.attack.words`); the server's range check still runs.
- ``secagg raw, no check``: the same sum decoded without the range check.

The two checked SecAgg variants run the real protocol in-process
(:func:`ssl_fed.secagg.run_local_round`: keys, shares, masks, unmasking); a raw-words site
adds ``raw - honest`` to its masked vector, which is the same as masking its raw words, since
masking is addition modulo ``2^b``. The unchecked variant decodes the modular sum of the
encodings, which equals what the server unmasks (masks cancel exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.attack.words import honest_words, raw_words, unmasked_sum
from ssl_fed.secagg import AggregateResult, SecAggConfig, run_local_round
from ssl_fed.secagg.params import resolve_round
from ssl_fed.secagg.quantize import decode_mean

Vector = NDArray[np.float64]
VARIANTS = (
    "plain+check",
    "plain, no check",
    "secagg+clip",
    "secagg raw+check",
    "secagg raw, no check",
)
KEY = "delta"


@dataclass(frozen=True)
class Outcome:
    """The mean the server applies (``None``: the round is rejected) and what happened."""

    mean: Vector | None
    note: str = ""


def plain_mean(updates: dict[int, Vector], bound: float | None) -> Outcome:
    """Mean of the updates the server accepts (``bound``: drop any with a value beyond it)."""
    kept = [
        u
        for u in updates.values()
        if bound is None or (np.all(np.isfinite(u)) and np.abs(u).max(initial=0.0) <= bound)
    ]
    dropped = len(updates) - len(kept)
    note = f"{dropped} update(s) dropped by the range check" if dropped else ""
    if not kept:
        return Outcome(None, "every update dropped")
    return Outcome(np.mean(np.stack(kept), axis=0), note)


def secagg_config(clip: float) -> SecAggConfig:
    """Return the round settings ssl-fed's server uses (weight fixed at 1, auto value bits)."""
    return SecAggConfig(clip_range=clip, max_weight=1, fixed_weight=1)


def secagg_round(updates: dict[int, Vector], raw_sites: set[int], clip: float) -> Outcome:
    """Run the real SecAgg+ round; ``raw_sites`` submit unclipped words (see module doc)."""
    cfg = secagg_config(clip)
    shape = resolve_round(len(updates), cfg)
    nodes = {site + 101: u for site, u in updates.items()}  # node ids need not be site ids
    raw = {site + 101 for site in raw_sites}

    def tamper(stage: str, nid: int, reply: dict[str, Any]) -> dict[str, Any]:
        if stage != "collect" or nid not in raw:
            return reply
        args = (nodes[nid], 1, clip, shape.value_bits, shape.word_bits)
        shift = raw_words(*args) - honest_words(*args)  # wraps modulo 2^b
        return dict(reply) | {"masked": reply["masked"] + shift}

    d = len(next(iter(updates.values())))
    inputs = {n: ({KEY: u}, 1.0) for n, u in nodes.items()}
    res = run_local_round(inputs, [(KEY, (d,))], cfg, tamper=tamper)
    if isinstance(res, AggregateResult):
        note = f"{res.clipped} value(s) clipped" if res.clipped else ""
        return Outcome(np.asarray(res.arrays[KEY], np.float64), note)
    return Outcome(None, res.reason)


def unchecked_mean(updates: dict[int, Vector], raw_sites: set[int], clip: float) -> Outcome:
    """Decode the unmasked sum without the range check (what the server would apply)."""
    shape = resolve_round(len(updates), secagg_config(clip))
    args = (1, clip, shape.value_bits, shape.word_bits)
    words = [
        (raw_words if site in raw_sites else honest_words)(u, *args) for site, u in updates.items()
    ]
    mean, _, _ = decode_mean(unmasked_sum(words), clip, shape.value_bits)
    return Outcome(mean)


def replay_round(
    updates: dict[int, Vector], attackers: set[int], clip: float
) -> dict[str, Outcome]:
    """Return the applied mean under every variant of :data:`VARIANTS`."""
    return {
        "plain+check": plain_mean(updates, clip),
        "plain, no check": plain_mean(updates, None),
        "secagg+clip": secagg_round(updates, set(), clip),
        "secagg raw+check": secagg_round(updates, attackers, clip),
        "secagg raw, no check": unchecked_mean(updates, attackers, clip),
    }
