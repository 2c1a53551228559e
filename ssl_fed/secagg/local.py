"""Run one SecAgg+ round in-process, without Flower: for tests, examples and cost measurements.

The same client and server code as the Flower path runs here; only transport is replaced by
dict passing. ``drop`` makes a site go silent from a given stage on, ``tamper`` lets a test rewrite
any reply on its way to the server (a hostile site), and ``transcript`` records every payload the
server receives, to check what an honest-but-curious server sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg import client
from ssl_fed.secagg.identity import SiteIdentity
from ssl_fed.secagg.params import SecAggConfig
from ssl_fed.secagg.result import AggregateResult, Skipped
from ssl_fed.secagg.server import SecAggServer
from ssl_fed.secagg.setup import ArraySpec
from ssl_fed.secagg.wire import Payload

SiteInput = tuple[Mapping[str, NDArray[np.number[Any]]], float]
Tamper = Callable[[str, int, Payload], Payload]


def run_local_round(
    inputs: Mapping[int, SiteInput],
    spec: ArraySpec,
    cfg: SecAggConfig,
    *,
    drop: Mapping[int, str] | None = None,
    tamper: Tamper | None = None,
    transcript: list[tuple[str, int, Payload]] | None = None,
    identities: Mapping[int, SiteIdentity] | None = None,
) -> AggregateResult | Skipped:
    """Aggregate ``inputs`` (node id -> (arrays by name, weight)) with SecAgg+.

    Parameters
    ----------
    inputs : Mapping[int, SiteInput]
        Node id -> (update arrays by name, integer weight).
    spec : ArraySpec
        Names and shapes of the update arrays.
    cfg : SecAggConfig
        Round settings.
    drop : Mapping[int, str] | None
        Site -> first stage it does not answer ("advertise", "share", "collect", "consist",
        "unmask").
    tamper : Tamper | None
        ``tamper(stage, node_id, reply) -> reply`` applied to each reply before the server sees it.
    transcript : list | None
        Receives ``(stage, node_id, reply)`` for every reply the server receives.
    identities : Mapping[int, SiteIdentity] | None
        Per site, its signing identity (signed keys + consistency check); ``None``: unsigned.
    """
    drop = drop or {}
    server = SecAggServer(list(inputs), spec, cfg)
    states: dict[int, client.ClientState] = {}

    def exchange(stage: str, requests: dict[int, Payload]) -> dict[int, Payload]:
        replies: dict[int, Payload] = {}
        for nid, req in requests.items():
            if nid in drop and client.STAGES.index(stage) >= client.STAGES.index(drop[nid]):
                continue
            me = (identities or {}).get(nid)
            try:
                if stage == "advertise":
                    states[nid], rep = client.advertise(nid, dict(req), me)
                elif stage == "share":
                    states[nid], rep = client.share(states[nid], dict(req), me)
                elif stage == "collect":
                    setup = states[nid].round_setup()
                    encoded = setup.encode(*inputs[nid])
                    states[nid], rep = client.mask(states[nid], dict(req), encoded)
                elif stage == "consist":
                    states[nid], rep = client.consist(states[nid], dict(req), me)
                else:
                    states[nid], rep = client.unmask(states[nid], dict(req), me)
            except ValueError:
                continue
            if tamper is not None:
                rep = tamper(stage, nid, rep)
            if transcript is not None:
                transcript.append((stage, nid, rep))
            replies[nid] = rep
        return replies

    skip = server.accept_advertise(exchange("advertise", server.advertise_requests()))
    if skip is not None:
        return skip
    skip = server.accept_shares(exchange("share", server.share_requests()))
    if skip is not None:
        return skip
    skip = server.accept_masked(exchange("collect", server.collect_requests()))
    if skip is not None:
        return skip
    skip = server.accept_consist(exchange("consist", server.consist_requests()))
    if skip is not None:
        return skip
    server.accept_unmask(exchange("unmask", server.unmask_requests()))
    return server.finish()
