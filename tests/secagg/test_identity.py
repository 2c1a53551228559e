"""A deviating server: substituted keys and inconsistent survivor sets get it nothing.

Bonawitz et al. 2017 §4.2 / Bell et al. 2020 §4: sites sign their keys and the survivor set they
were shown, verify each other's signatures against their own roster, and reveal unmask shares
only for one consistently signed survivor set.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict

from ssl_fed.fed.secagg_driver import RECORD, run_secagg_round
from ssl_fed.fed.secagg_mod import make_secagg_mod
from ssl_fed.secagg import (
    AggregateResult,
    SecAggConfig,
    client,
    keys,
    run_local_round,
)
from ssl_fed.secagg.identity import (
    SiteIdentity,
    advert_message,
    derived_identity,
    generate_identities,
)
from ssl_fed.secagg.server import SecAggServer
from ssl_fed.secagg.wire import ids_to_bytes

from .helpers import (
    SPEC,
    LoopbackGrid,
    SiteApp,
    delta_handler,
    exact_mean,
    max_err,
    site_inputs,
    task_identity,
)

__all__ = ["task_identity"]

IDS = [101, 202, 303, 404, 505]


def _identities() -> dict[int, SiteIdentity]:
    return dict(zip(IDS, generate_identities(len(IDS)), strict=True))


def _through_share(ids: dict[int, SiteIdentity]) -> tuple[SecAggServer, dict[int, Any]]:
    server = SecAggServer(IDS, SPEC, SecAggConfig())
    states, reps = {}, {}
    for i, p in server.advertise_requests().items():
        states[i], reps[i] = client.advertise(i, p, ids[i])
    server.accept_advertise(reps)
    return server, states


def _through_consist(
    ids: dict[int, SiteIdentity], shown: dict[int, list[int]] | None = None
) -> tuple[SecAggServer, dict[int, Any]]:
    """Run to the consistency stage; ``shown`` overrides the survivor set a site is shown."""
    server, states = _through_share(ids)
    reps = {}
    for i, p in server.share_requests().items():
        states[i], reps[i] = client.share(states[i], p, ids[i])
    server.accept_shares(reps)
    inputs = site_inputs(IDS, seed=7)
    reps = {}
    for i, p in server.collect_requests().items():
        states[i], reps[i] = client.mask(states[i], p, server.setup.encode(*inputs[i]))
    server.accept_masked(reps)
    reps = {}
    for i, p in server.consist_requests().items():
        if shown and i in shown:
            p = dict(p, survivor_set=ids_to_bytes(shown[i]))
        states[i], reps[i] = client.consist(states[i], p, ids[i])
    server.accept_consist(reps)
    return server, states


def _answers(server: SecAggServer, states: dict[int, Any], ids: dict[int, SiteIdentity]) -> dict:
    out = {}
    for i, p in server.unmask_requests().items():
        try:
            _, out[i] = client.unmask(
                client.ClientState.from_bytes(states[i].to_bytes()), p, ids[i]
            )
        except ValueError:
            continue
    return out


def test_signed_round_aggregates_exactly() -> None:
    inputs = site_inputs(IDS, seed=3)
    res = run_local_round(inputs, SPEC, SecAggConfig(), identities=_identities())
    assert isinstance(res, AggregateResult) and res.survivors == IDS
    assert max_err(res.arrays, exact_mean(inputs, IDS)) <= res.error_bound + 1e-12


def test_substituted_share_encryption_key_is_detected() -> None:
    # Prepare: the server replaces site 303's share-encryption key with its own in 101's request
    ids = _identities()
    server, states = _through_share(ids)
    req = server.share_requests()[101]
    pos = list(server.live[101]).index(303)
    _, attacker_pk = keys.generate_keypair()
    forged = dict(req, pk_c=[attacker_pk if n == pos else k for n, k in enumerate(req["pk_c"])])
    # Execute / Assert: 101 refuses before encrypting any share; the honest request still works
    with pytest.raises(ValueError, match="no valid signature"):
        client.share(client.ClientState.from_bytes(states[101].to_bytes()), forged, ids[101])
    client.share(states[101], req, ids[101])


def test_keys_re_signed_by_a_key_off_the_roster_are_refused() -> None:
    # Prepare: the server substitutes 303's key and signs it with its own (off-roster) key
    ids = _identities()
    server, states = _through_share(ids)
    req = server.share_requests()[101]
    pos = list(server.live[101]).index(303)
    rogue = SiteIdentity(ed25519.Ed25519PrivateKey.generate(), frozenset())
    _, pk = keys.generate_keypair()
    msg = advert_message(server.setup.digest(), 303, pk, req["pk_s"][pos], req["commits"][pos])
    forged = dict(
        req,
        pk_c=[pk if n == pos else k for n, k in enumerate(req["pk_c"])],
        signers=[rogue.public if n == pos else k for n, k in enumerate(req["signers"])],
        sigs=[rogue.sign(msg) if n == pos else k for n, k in enumerate(req["sigs"])],
    )
    # Execute / Assert
    with pytest.raises(ValueError, match="roster"):
        client.share(states[101], forged, ids[101])


def test_two_sites_shown_different_survivor_sets_give_no_unmask_shares() -> None:
    # Prepare: every site survived, but the server shows 505 a set without 303
    ids = _identities()
    server, states = _through_consist(ids, shown={505: [101, 202, 404, 505]})
    # Execute: the server asks everyone to unmask by the full set, with all signatures it has
    answers = _answers(server, states, ids)
    # Assert: nobody reveals a share (505's signature is on another set; 505 signed another set)
    assert answers == {}


def test_consistent_views_unmask_and_the_odd_site_still_refuses() -> None:
    # Prepare: as above, but the server leaves 505's signature out of the unmask request
    ids = _identities()
    server, states = _through_consist(ids, shown={505: [101, 202, 404, 505]})
    del server.consist[505]
    # Execute
    answers = _answers(server, states, ids)
    # Assert: the four who signed the same set reveal (by that set); 505 is not asked at all
    assert sorted(answers) == [101, 202, 303, 404]
    assert all(a["s_ids"] == b"" for a in answers.values())  # nobody reveals a mask key
    res_ok = _through_consist(ids)
    assert sorted(_answers(*res_ok, ids)) == IDS  # positive control: consistent round, all answer


def test_simulation_identities_through_the_mod_and_driver(task_identity: None) -> None:
    # Prepare: four virtual sites derive their keys from one secret the server never sees; the
    # "server" substitutes one key in site 11's share request on the way
    secret = os.urandom(32)
    mod = make_secagg_mod(identity_of=partial(derived_identity, secret))
    seen: dict[str, list[str]] = {}

    def site(n: int) -> SiteApp:
        handler = delta_handler({"w": np.full((2, 3), 0.01 * n, np.float32)})

        def app(msg: Message, ctx: Context) -> Message:
            rec = msg.content.config_records[RECORD]
            if n == 11 and rec["stage"] == "share":
                _, fake = keys.generate_keypair()
                rec["pk_c"] = [fake, *list(rec["pk_c"])[1:]]  # type: ignore[index]
            reply = mod(msg, ctx, handler)
            if reply.has_error():
                seen.setdefault(str(rec["stage"]), []).append(reply.error.reason)
            return reply

        return app

    grid = LoopbackGrid({n: site(n) for n in (11, 22, 33, 44)})
    arrays = ArrayRecord({"w": Array(np.zeros((2, 3), np.float32))})
    # Execute
    res = run_secagg_round(grid, [11, 22, 33, 44], RecordDict({"arrays": arrays}), [("w", (2, 3))],
                           SecAggConfig(clip_range=0.5, max_weight=1, fixed_weight=1))  # fmt: skip
    # Assert: 11 refused the forged keys; the other three aggregated, signed end to end
    assert any("no valid signature" in r for r in seen["share"])
    assert isinstance(res, AggregateResult) and res.survivors == [22, 33, 44]
    assert np.allclose(res.arrays["w"], 0.01 * (22 + 33 + 44) / 3, atol=1e-6)
