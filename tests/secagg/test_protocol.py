"""End-to-end SecAgg+ rounds in-process (no Flower): correctness, dropouts, privacy."""

from typing import Any

import numpy as np
import pytest

from ssl_fed.secagg import AggregateResult, SecAggConfig, Skipped, client, keys, run_local_round
from ssl_fed.secagg.prg import derive_info, keystream_words
from ssl_fed.secagg.server import SecAggServer
from ssl_fed.secagg.wire import ProtocolError

from .helpers import SPEC, exact_mean, max_err, site_inputs

IDS5 = [101, 202, 303, 404, 505]
IDS10 = [7 + 1000 * i for i in range(10)] + [2**64 - 1]


@pytest.mark.parametrize("ids", [IDS5, IDS10])
def test_aggregate_equals_weighted_mean_within_bound(ids: list[int]) -> None:
    # Prepare
    inputs = site_inputs(ids)
    # Execute
    res = run_local_round(inputs, SPEC, SecAggConfig())
    # Assert
    assert isinstance(res, AggregateResult)
    assert res.survivors == sorted(ids)
    assert res.total_weight == sum(w for _, w in inputs.values())
    assert max_err(res.arrays, exact_mean(inputs, ids)) <= res.error_bound + 1e-12
    assert res.error_bound == 8.0 / (2 ** (19 if len(ids) == 5 else 18) - 1)


@pytest.mark.parametrize("stage", ["advertise", "share", "collect", "unmask"])
def test_one_dropout_at_any_stage_is_tolerated(stage: str) -> None:
    # Prepare: 5 sites, k=4, t=3; site 303 goes silent from `stage` on.
    inputs = site_inputs(IDS5, seed=2)
    # Execute
    res = run_local_round(inputs, SPEC, SecAggConfig(), drop={303: stage})
    # Assert: dropped before its masked input -> survivors' mean; after -> everyone's.
    assert isinstance(res, AggregateResult)
    survivors = IDS5 if stage == "unmask" else [i for i in IDS5 if i != 303]
    assert res.survivors == survivors
    assert max_err(res.arrays, exact_mean(inputs, survivors)) <= res.error_bound + 1e-12


def test_dropouts_at_several_stages_in_a_ten_site_round() -> None:
    inputs = site_inputs(IDS10, seed=3)
    drop = {IDS10[0]: "share", IDS10[3]: "collect", IDS10[6]: "unmask"}
    res = run_local_round(inputs, SPEC, SecAggConfig(), drop=drop)
    assert isinstance(res, AggregateResult)
    survivors = [i for i in sorted(IDS10) if i not in (IDS10[0], IDS10[3])]
    assert max_err(res.arrays, exact_mean(inputs, survivors)) <= res.error_bound + 1e-12


@pytest.mark.parametrize(
    ("drop", "stage"),
    [
        ({101: "advertise", 202: "advertise", 303: "advertise"}, "advertise"),
        ({101: "collect", 202: "collect", 303: "collect"}, "collect"),
        ({101: "unmask", 202: "unmask", 303: "unmask"}, "unmask"),
    ],
)
def test_too_many_dropouts_skip_the_round(drop: dict[int, str], stage: str) -> None:
    res = run_local_round(site_inputs(IDS5), SPEC, SecAggConfig(), drop=drop)
    assert isinstance(res, Skipped)
    assert res.stage == stage and res.reason


def _circular_close(y: np.ndarray, e: np.ndarray, tol: int) -> float:
    d = (y.astype(np.int64) - e.astype(np.int64)) % (2**32)
    return float(np.minimum(d, 2**32 - d).__le__(tol).mean())


def test_server_transcript_reveals_no_single_input() -> None:
    # Prepare: the (honest-but-curious) server records every reply it receives.
    inputs = site_inputs(IDS5, seed=4)
    transcript: list[tuple[str, int, dict[str, Any]]] = []
    # Execute
    res = run_local_round(inputs, SPEC, SecAggConfig(), transcript=transcript)
    # Assert: no array in any message is any site's encoded update, or within 2^16 words of it
    # (an unmasked input is close in every coordinate; a uniform mask puts one coordinate of ~19
    # within 2^16 with probability ~3e-5 each, so the bound is a fraction, not zero)
    assert isinstance(res, AggregateResult)
    server = SecAggServer(IDS5, SPEC, SecAggConfig())
    encoded = [server.setup.encode(*inputs[i]) for i in IDS5]
    arrays = [v for _, _, p in transcript for v in p.values() if isinstance(v, np.ndarray)]
    assert len(arrays) == 5
    for y in arrays:
        for e in encoded:
            assert _circular_close(y, e, 2**16) < 0.5
    blobs = b"".join(v for _, _, p in transcript for v in p.values() if isinstance(v, bytes))
    for i in IDS5:
        for arr in inputs[i][0].values():
            assert arr.astype(np.float32).tobytes()[:16] not in blobs


def _manual_round(
    inputs: Any,
) -> tuple[SecAggServer, dict[int, client.ClientState], dict[int, Any]]:
    server = SecAggServer(IDS5, SPEC, SecAggConfig())
    states: dict[int, client.ClientState] = {}
    reps = {}
    for i, p in server.advertise_requests().items():
        states[i], reps[i] = client.advertise(i, p)
    server.accept_advertise(reps)
    reps = {}
    for i, p in server.share_requests().items():
        states[i], reps[i] = client.share(states[i], p)
    server.accept_shares(reps)
    masked = {}
    for i, p in server.collect_requests().items():
        states[i], masked[i] = client.mask(states[i], p, server.setup.encode(*inputs[i]))
    server.accept_masked(masked)
    reps = {}
    for i, p in server.consist_requests().items():
        states[i], reps[i] = client.consist(states[i], p)
    server.accept_consist(reps)
    return server, states, masked


def test_removing_self_mask_still_leaves_pairwise_masks() -> None:
    # Prepare
    inputs = site_inputs(IDS5, seed=5)
    server, states, masked = _manual_round(inputs)
    reps = {}
    for i, p in server.unmask_requests().items():
        states[i], reps[i] = client.unmask(states[i], p)
    server.accept_unmask(reps)
    i = 303
    seed = keys.combine_secret(list(server.b_shares[i].values())[:3])
    # Execute: the server strips 303's self-mask with its reconstructed seed.
    s = server.setup
    y = masked[i]["masked"] - keystream_words(
        seed, derive_info(s.round_id, "self-mask", i), s.length, s.dtype
    )
    # Assert: the seed is right (commitment), yet y is still far from 303's input.
    assert keys.commit_seed(s.round_id, i, seed) == server.keys[i][2]
    assert _circular_close(y, s.encode(*inputs[i]), 2**16) < 0.01
    assert isinstance(server.finish(), AggregateResult)


def test_site_never_reveals_both_secrets_or_answers_twice() -> None:
    server, states, _ = _manual_round(site_inputs(IDS5))
    req = server.unmask_requests()[101]
    bad = dict(req, dropped=req["survivors"][:8])
    with pytest.raises(ProtocolError, match="disagree"):
        client.unmask(client.ClientState.from_bytes(states[101].to_bytes()), bad)
    few = dict(req, signed_ids=req["signed_ids"][:16], signers=[b"", b""], sigs=[b"", b""])
    with pytest.raises(ProtocolError, match="fewer"):
        client.unmask(client.ClientState.from_bytes(states[101].to_bytes()), few)
    st, _ = client.unmask(states[101], req)
    with pytest.raises(ProtocolError, match="out of order"):
        client.unmask(st, req)


def test_version_mismatch_is_a_clear_error() -> None:
    server = SecAggServer(IDS5, SPEC, SecAggConfig())
    req = dict(server.advertise_requests()[101], version="ssl-fed-secagg+/0")
    with pytest.raises(ProtocolError, match="version mismatch"):
        client.advertise(101, req)


def test_bad_site_update_is_refused_at_the_site() -> None:
    server = SecAggServer(IDS5, SPEC, SecAggConfig(max_weight=10))
    arrays, _ = site_inputs(IDS5)[101]
    with pytest.raises(ValueError, match="max_weight"):
        server.setup.encode(arrays, 11)
    with pytest.raises(ValueError, match="shape"):
        server.setup.encode(dict(arrays, w=np.zeros((4, 3))), 1)
    with pytest.raises(ValueError, match="NaN"):
        server.setup.encode(dict(arrays, b=np.full(5, np.nan)), 1)
