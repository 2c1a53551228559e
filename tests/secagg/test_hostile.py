"""Hostile peers: the site's mod fails closed, the server rejects sums no honest sites can make.

Runs the real driver, server rounds and mod over :class:`~tests.secagg.helpers.LoopbackGrid`
(in-process delivery), so each test exercises the same code a deployment does, minus transport.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict

from ssl_fed.config import load_config
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.messages import RoundOutcome, train_content
from ssl_fed.fed.plain import aggregate_plain
from ssl_fed.fed.rounds import RoundRecord, SiteRounds
from ssl_fed.fed.secagg import aggregate_secure
from ssl_fed.fed.secagg_driver import MASKED, RECORD
from ssl_fed.fed.secagg_mod import make_secagg_mod, secagg_mod
from ssl_fed.secagg import SecAggConfig
from ssl_fed.secagg.server import SecAggServer
from tests.secagg.helpers import LoopbackGrid, SiteApp, delta_handler, task_identity

__all__ = ["task_identity"]
SPECS = [fa.ArraySpec("w", (2, 3), "float32"), fa.ArraySpec("b", (3,), "float32")]
NODES = [11, 22, 33, 44]
C = 0.5  # aggregation.clipping_range of the default config


def _delta(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s.name: rng.uniform(-0.1, 0.1, s.shape).astype(np.float32) for s in SPECS}


def _msg(content: RecordDict) -> Message:
    meta = Metadata(1, "m1", 0, 11, "", "1", time.time(), 60.0, "train")
    return Message(content=content, metadata=meta)


def _ctx() -> Context:
    return Context(run_id=1, node_id=11, node_config={}, state=RecordDict(), run_config={})


def _counting() -> tuple[SiteApp, list[Message]]:
    calls: list[Message] = []

    def handler(msg: Message, context: Context) -> Message:
        calls.append(msg)
        return delta_handler(_delta(0))(msg, context)

    return handler, calls


def test_train_message_without_secagg_record_is_refused(task_identity: None) -> None:
    # Prepare: a plain train message (global arrays + config), no "secagg" record
    handler, calls = _counting()
    content = train_content([np.zeros(s.shape, np.float32) for s in SPECS], ["w", "b"], "r", 1)
    # Execute
    reply = secagg_mod(_msg(content), _ctx(), handler)
    # Assert: an error reply, and the handler (training) never ran
    assert reply.has_error() and "refused" in reply.error.reason
    assert calls == []


def test_plain_message_passes_only_where_the_site_allows_plain(task_identity: None) -> None:
    handler, calls = _counting()
    content = train_content([np.zeros(s.shape, np.float32) for s in SPECS], ["w", "b"], "r", 1)
    reply = make_secagg_mod(require_secagg=False)(_msg(content), _ctx(), handler)
    assert not reply.has_error() and len(calls) == 1


def test_masked_input_request_out_of_order_never_trains(task_identity: None) -> None:
    # Prepare: the site answers advertise, then the server skips the share stage
    handler, calls = _counting()
    server = SecAggServer(NODES, [(s.name, s.shape) for s in SPECS], SecAggConfig())
    ctx = _ctx()
    adv = secagg_mod(_msg(RecordDict({RECORD: ConfigRecord(server.advertise_requests()[11])})),
                     ctx, handler)  # fmt: skip
    assert not adv.has_error()
    forged = {"version": adv.content.config_records[RECORD]["version"], "stage": "collect",
              "round_id": server.setup.round_id, "ids": b"", "cts": []}  # fmt: skip
    # Execute
    reply = secagg_mod(_msg(RecordDict({RECORD: ConfigRecord(forged)})), ctx, handler)
    # Assert
    assert reply.has_error() and "out of order" in reply.error.reason
    assert calls == []


def _tampering(app: SiteApp, word: int, add: int) -> SiteApp:
    """A malicious site: adds ``add`` (mod 2^b) to one word of its masked vector."""

    def site(msg: Message, context: Context) -> Message:
        reply = app(msg, context)
        if MASKED in reply.content.array_records:
            y = reply.content.array_records[MASKED]["masked"].numpy().copy()
            y[word : word + 1 or None] += np.array([add % 2 ** (8 * y.itemsize)], y.dtype)
            reply.content[MASKED] = ArrayRecord({"masked": Array(y)})
        return reply

    return site


def _round(sites: dict[int, SiteApp]) -> tuple[RoundOutcome, list[np.ndarray], list[np.ndarray]]:
    """One secure round through the server's own path; return (outcome, model before, after)."""
    cfg = load_config()
    before = [np.full(s.shape, 0.25, np.float32) for s in SPECS]
    rounds = SiteRounds(cfg, list(before), SPECS, run_id="r", on_round_end=lambda r, a: None)
    content = train_content(before, ["w", "b"], "r", 1)
    outcome = aggregate_secure(LoopbackGrid(sites), NODES, content, cfg.aggregation, 1)
    rounds.apply(RoundRecord(1, sampled=list(NODES)), outcome)
    return outcome, before, rounds.arrays


def _honest(n: int) -> SiteApp:
    handler = delta_handler(_delta(n))
    return lambda msg, ctx: secagg_mod(msg, ctx, handler)


@pytest.mark.parametrize(
    "word, add, reason",
    [
        (0, 5 * (2**24 - 1), "outside [-c, c]"),  # pushes coordinate 0 of the mean past +c
        (-1, 1, "total weight 5"),  # claims weight 2
        (-1, -1, "total weight 3 != 1 x 4 survivors"),  # claims weight 0
        (-2, 2**30, "clip count"),  # an impossible clip count
    ],
)
def test_hostile_site_gets_the_round_rejected_and_model_unchanged(
    task_identity: None, word: int, add: int, reason: str
) -> None:
    # Prepare: three honest sites, one that edits its masked vector after masking
    sites = {n: _honest(n) for n in NODES}
    sites[44] = _tampering(sites[44], word, add)
    # Execute
    outcome, before, after = _round(sites)
    # Assert
    assert outcome.mean is None and outcome.skipped is not None
    assert "rejected aggregate" in outcome.skipped and reason in outcome.skipped
    assert all(np.array_equal(a, b) for a, b in zip(after, before, strict=True))


def test_honest_round_is_applied_and_reports_the_clip_count(task_identity: None) -> None:
    # Prepare: site 44 has two coordinates beyond the clip range (0.9 and -0.7)
    deltas = {n: _delta(n) for n in NODES}
    deltas[44]["w"][0, 0], deltas[44]["b"][2] = 0.9, -0.7
    sites: dict[int, SiteApp] = {}
    for n in NODES:
        h = delta_handler(deltas[n])
        sites[n] = lambda msg, ctx, h=h: secagg_mod(msg, ctx, h)  # type: ignore[misc]
    # Execute
    outcome, before, after = _round(sites)
    # Assert: the mean of the *clipped* deltas, within the quantization bound, was added
    assert outcome.skipped is None and outcome.clipped == 2
    for k, name in enumerate(["w", "b"]):
        want = np.mean([np.clip(deltas[n][name], -C, C) for n in NODES], axis=0)
        assert np.abs(after[k] - before[k] - want).max() <= C / (2**24 - 1) + 1e-6


def test_plain_round_drops_out_of_range_and_non_finite_deltas(task_identity: None) -> None:
    # Prepare: one site sends 3e38 (finite in float32, but an overflowing mean), one sends inf
    deltas = {n: _delta(n) for n in NODES}
    deltas[33]["w"][:] = 3e38
    deltas[44]["b"][1] = np.inf
    cfg = load_config(["aggregation=plain"])
    before = [np.zeros(s.shape, np.float32) for s in SPECS]
    rounds = SiteRounds(cfg, before, SPECS, run_id="r", on_round_end=lambda r, a: None)
    grid = LoopbackGrid({n: delta_handler(deltas[n]) for n in NODES})
    # Execute
    outcome = aggregate_plain(grid, rounds, NODES, train_content(before, ["w", "b"], "r", 1), 1)
    # Assert: only the two in-range deltas are averaged
    assert outcome.completed == [11, 22] and outcome.mean is not None
    want = (deltas[11]["w"] + deltas[22]["w"]) / 2
    assert np.allclose(outcome.mean[0], want, atol=1e-7)
