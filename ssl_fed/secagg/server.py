"""Server side of ssl-fed's SecAgg+ (Bell et al., CCS 2020, Fig. 5, "Server" steps), Flower-free.

:class:`SecAggServer` builds each stage's requests and validates each stage's replies. A reply that
breaks the protocol (wrong field, size, id, dtype or shape) rejects *that site* and is recorded with
the reason; it never raises. After every stage the round either continues or ends as
:class:`~ssl_fed.secagg.result.Skipped` (too few sites left, or a secret that cannot be rebuilt).

Notes
-----
What the server learns: public keys, commitments to self-mask seeds, ciphertexts it cannot read,
masked vectors (uniform on ``Z_{2^b}`` without the seeds), and for each survivor its seed ``b_i``
(which removes only the self-mask: pairwise masks with surviving neighbours stay) or for each
dropped site its mask key ``s_j^SK`` (which removes only masks towards survivors of a dropped
input). It never requests both secrets of one site, and sites refuse to reveal both (client.py).
Hence it learns ``Σ w_i x_i`` and ``Σ w_i`` over the survivors only (paper Thm. 3.6). Against a
*deviating* server, sites with a signing identity also verify signed keys and a consistency round
(:mod:`ssl_fed.secagg.identity`). The clip count (one more masked word) is revealed as a total.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg import keys
from ssl_fed.secagg.checked import checked_result
from ssl_fed.secagg.params import SecAggConfig, resolve_round
from ssl_fed.secagg.result import AggregateResult, Skipped
from ssl_fed.secagg.setup import ArraySpec, RoundSetup
from ssl_fed.secagg.unmask import rebuild_secret, unmasked_sum
from ssl_fed.secagg.wire import (
    Payload,
    ProtocolError,
    check_header,
    get_bytes,
    get_bytes_list,
    get_ids,
    header,
    ids_to_bytes,
)

SITE_TIMINGS = ("t_shamir", "t_encrypt", "t_mask", "t_train", "t_serialize", "t_encode")


class SecAggServer:
    """One round of SecAgg+ at the server: requests out, validated replies in."""

    def __init__(
        self, node_ids: list[int], spec: ArraySpec, cfg: SecAggConfig, round_id: bytes | None = None
    ) -> None:
        ids = sorted(set(node_ids))
        if len(ids) != len(node_ids):
            raise ValueError("node_ids contain duplicates; sample each site once")
        self.setup = RoundSetup(
            round_id or os.urandom(16),
            ids,
            resolve_round(len(ids), cfg),
            cfg.clip_range,
            cfg.max_weight,
            os.urandom(16),
            spec,
        )
        self.nbrs = self.setup.neighbours()
        self.fixed_weight = cfg.fixed_weight
        self.rejected: dict[int, str] = {}
        self.keys: dict[int, tuple[bytes, bytes, bytes]] = {}
        self.live: dict[int, list[int]] = {}
        self.cts: dict[int, dict[int, bytes]] = {}
        self.forwarded: dict[int, list[int]] = {}
        self.masked: dict[int, NDArray[np.unsignedinteger]] = {}
        self.signed: dict[int, tuple[bytes, bytes]] = {}
        self.consist: dict[int, bytes] = {}
        self.b_shares: dict[int, dict[int, bytes]] = {}
        self.s_shares: dict[int, dict[int, bytes]] = {}
        self.timings: dict[str, float] = {}

    def _add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def _accept(
        self,
        replies: dict[int, Payload],
        expected: set[int],
        stage: str,
        handle: Callable[[int, Payload], None],
    ) -> None:
        for nid, p in replies.items():
            if nid not in expected:
                continue
            try:
                check_header(p, stage, self.setup.round_id)
                if get_bytes(p, "node_id", 8) != ids_to_bytes([nid]):
                    raise ProtocolError("payload claims another site's id")
                handle(nid, p)
                for key in SITE_TIMINGS:
                    if isinstance(p.get(key), float):
                        self._add_time(f"sites.{key[2:]}", float(p[key]))
            except (ProtocolError, ValueError) as err:
                self.rejected[nid] = f"{stage}: {err}"

    def _skip_if_few(self, alive: list[int], stage: str) -> Skipped | None:
        if len(alive) >= self.setup.shape.min_survivors:
            return None
        need = self.setup.shape.min_survivors
        return self._fail(f"{len(alive)} sites left after {stage}, need {need}", alive, stage)

    def advertise_requests(self) -> dict[int, Payload]:
        """Stage 1 requests: the round setup, to every sampled site."""
        p = self.setup.to_payload()
        return {i: p for i in self.setup.node_ids}

    def accept_advertise(self, replies: dict[int, Payload]) -> Skipped | None:
        """Record public keys and seed commitments; reject malformed or duplicate keys."""

        def handle(nid: int, p: Payload) -> None:
            pk_c, pk_s = get_bytes(p, "pk_c", 32), get_bytes(p, "pk_s", 32)
            keys.agree(os.urandom(32), pk_c), keys.agree(os.urandom(32), pk_s)
            if pk_c == pk_s or any({pk_c, pk_s} & {k[0], k[1]} for k in self.keys.values()):
                raise ProtocolError("public key reused from another site or role")
            signed = (get_bytes(p, "signer"), get_bytes(p, "sig"))
            self.keys[nid] = (pk_c, pk_s, get_bytes(p, "commit", 32))
            self.signed[nid] = signed

        self._accept(replies, set(self.setup.node_ids), "advertise", handle)
        alive = set(self.keys)
        while True:
            thin = {i for i in alive if len(alive & set(self.nbrs[i])) < self.setup.shape.t}
            if not thin:
                break
            alive -= thin
        self.live = {i: sorted(alive & set(self.nbrs[i])) for i in sorted(alive)}
        return self._skip_if_few(sorted(alive), "advertise")

    def share_requests(self) -> dict[int, Payload]:
        """Stage 2 requests: each site's live neighbours and their public keys."""
        out = {}
        for i, ids in self.live.items():
            p = header("share", self.setup.round_id)
            p.update(
                ids=ids_to_bytes(ids),
                pk_c=[self.keys[j][0] for j in ids],
                pk_s=[self.keys[j][1] for j in ids],
                commits=[self.keys[j][2] for j in ids],
                signers=[self.signed[j][0] for j in ids],
                sigs=[self.signed[j][1] for j in ids],
            )
            out[i] = p
        return out

    def accept_shares(self, replies: dict[int, Payload]) -> Skipped | None:
        """Record one ciphertext per live neighbour from each site."""

        def handle(nid: int, p: Payload) -> None:
            if get_ids(p, "ids") != self.live[nid]:
                raise ProtocolError("share reply is not addressed to exactly my live neighbours")
            cts = get_bytes_list(p, "cts", len(self.live[nid]), keys.PAIR_CIPHERTEXT_BYTES)
            self.cts[nid] = dict(zip(self.live[nid], cts, strict=True))

        self._accept(replies, set(self.live), "share", handle)
        return self._skip_if_few(sorted(self.cts), "share")

    def collect_requests(self) -> dict[int, Payload]:
        """Stage 3 requests: ciphertexts addressed to each site from neighbours that shared."""
        out = {}
        for i in self.cts:
            senders = [j for j in self.live[i] if j in self.cts]
            self.forwarded[i] = senders
            p = header("collect", self.setup.round_id)
            p.update(ids=ids_to_bytes(senders), cts=[self.cts[j][i] for j in senders])
            out[i] = p
        return out

    def accept_masked(self, replies: dict[int, Payload]) -> Skipped | None:
        """Record masked vectors of the exact dtype and length."""
        want = (self.setup.length,)

        def handle(nid: int, p: Payload) -> None:
            y = p.get("masked")
            if not isinstance(y, np.ndarray) or y.dtype != self.setup.dtype or y.shape != want:
                raise ProtocolError(
                    f"masked vector must be {self.setup.dtype.__name__}{list(want)}"
                )
            self.masked[nid] = y

        self._accept(replies, set(self.forwarded), "collect", handle)
        return self._skip_if_few(sorted(self.masked), "collect")

    def consist_requests(self) -> dict[int, Payload]:
        """Consistency stage: show every survivor the survivor set ``U3`` (one set for all)."""
        u3 = ids_to_bytes(sorted(self.masked))
        out = {}
        for i in self.masked:
            p = header("consist", self.setup.round_id)
            p["survivor_set"] = u3
            out[i] = p
        return out

    def accept_consist(self, replies: dict[int, Payload]) -> Skipped | None:
        """Record each survivor's signature on ``U3`` (sites check them; the server forwards)."""

        def handle(nid: int, p: Payload) -> None:
            self.consist[nid] = get_bytes(p, "sig")

        self._accept(replies, set(self.masked), "consist", handle)
        return self._skip_if_few(sorted(self.consist), "consist")

    def unmask_requests(self) -> dict[int, Payload]:
        """Stage 4 requests, to signers of ``U3``: the set, its signatures, who survived/dropped."""
        u4 = sorted(self.consist)
        shared = {
            "survivor_set": ids_to_bytes(sorted(self.masked)),
            "signed_ids": ids_to_bytes(u4),
            "signers": [self.signed[j][0] for j in u4],
            "sigs": [self.consist[j] for j in u4],
        }
        out = {}
        for i in u4:
            p = header("unmask", self.setup.round_id)
            near = self.forwarded[i]
            p.update(
                survivors=ids_to_bytes([j for j in near if j in self.masked]),
                dropped=ids_to_bytes([j for j in near if j not in self.masked]),
                **shared,
            )
            out[i] = p
        return out

    def accept_unmask(self, replies: dict[int, Payload]) -> None:
        """Record shares; each must carry the x-coordinate the owner assigned to this holder."""

        def handle(nid: int, p: Payload) -> None:
            got: list[tuple[dict[int, dict[int, bytes]], int, bytes]] = []
            for kind, store in (("b", self.b_shares), ("s", self.s_shares)):
                ids = get_ids(p, f"{kind}_ids")
                shares = get_bytes_list(p, f"{kind}_shares", len(ids), keys.SHARE_BYTES)
                for owner, sh in zip(ids, shares, strict=True):
                    wanted = (owner in self.masked) == (kind == "b")
                    if owner not in self.cts or nid not in self.live[owner] or not wanted:
                        raise ProtocolError(f"unrequested share for site {owner}")
                    if keys.share_index(sh) != self.live[owner].index(nid) + 1:
                        raise ProtocolError(f"share for site {owner} has the wrong index")
                    got.append((store, owner, sh))
            for store, owner, sh in got:
                store.setdefault(owner, {})[nid] = sh

        self._accept(replies, set(self.consist), "unmask", handle)

    def _secrets(self, alive: list[int]) -> tuple[dict[int, bytes], dict[int, bytes]] | str:
        """Rebuild survivors' self-mask seeds and dropped sites' mask keys, or say which fails."""
        gone = [
            j for j in self.cts if j not in alive and any(j in self.forwarded[i] for i in alive)
        ]
        t = self.setup.shape.t
        ok: list[tuple[int, dict[int, dict[int, bytes]], Callable[[int, bytes], bool], str]]
        ok = [(i, self.b_shares, self._seed_ok, "self-mask seed") for i in alive]
        ok += [(j, self.s_shares, self._key_ok, "mask key") for j in gone]
        found: dict[int, bytes] = {}
        for node, shares, check, what in ok:
            got = rebuild_secret(shares.get(node, {}), t, partial(check, node))
            if got is None:
                return f"cannot rebuild {what} of site {node}"
            found[node] = got
        return {i: found[i] for i in alive}, {j: found[j] for j in gone}

    def finish(self) -> AggregateResult | Skipped:
        """Rebuild secrets, unmask the sum; :mod:`~ssl_fed.secagg.checked` checks and decodes it."""
        s, alive = self.setup, sorted(self.masked)
        t0 = time.perf_counter()
        secrets = self._secrets(alive)
        if isinstance(secrets, str):
            return self._fail(secrets, alive)
        t1 = time.perf_counter()
        masked = {i: self.masked[i] for i in alive}
        public_s = {i: self.keys[i][1] for i in alive}
        total = unmasked_sum(s, masked, *secrets, self.forwarded, public_s)
        self._add_time("server.shamir", t1 - t0)
        self._add_time("server.mask", time.perf_counter() - t1)
        return checked_result(s, total, alive, self.rejected, self.timings, self.fixed_weight)

    def _seed_ok(self, node: int, seed: bytes) -> bool:
        return keys.commit_seed(self.setup.round_id, node, seed) == self.keys[node][2]

    def _key_ok(self, node: int, sk: bytes) -> bool:
        return keys.public_from_secret(sk) == self.keys[node][1]

    def _fail(self, reason: str, alive: list[int], stage: str = "unmask") -> Skipped:
        return Skipped(reason, stage, alive, dict(self.rejected), dict(self.timings))

    def summary(self) -> dict[str, Any]:
        """Sizes of the participant sets U1..U3 (for logs)."""
        return {"U1": len(self.keys), "U2": len(self.cts), "U3": len(self.masked)}
