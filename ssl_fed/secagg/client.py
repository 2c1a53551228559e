"""Site side of ssl-fed's SecAgg+ (Bell et al., CCS 2020, Fig. 5, "User" steps), Flower-free.

Each function takes the site's state and the server's request payload and returns the new state and
the reply payload. The state round-trips through bytes (JSON), so a Flower mod can keep it in
``Context.state`` between messages. Any malformed request raises :class:`ProtocolError`.

Notes
-----
Guarantees a site enforces on its own, whatever the server asks:
- it answers each stage at most once and in order (advertise, share, collect, consist, unmask),
  and never trains on a masked-input request that fails :func:`check_collect`;
- it never reveals both secrets' shares of one peer, nor anything for itself; it reveals only by
  the one survivor set ``U3`` it signed (survivors = my masking neighbours in ``U3``, dropped = the
  rest) and only when ``U3`` and the signers number at least ``min_survivors`` (paper: abort if
  ``|U| < t``);
- it masks with exactly the neighbours the server reported as having shared keys, and with all of
  them even if a peer's share ciphertext was bad, so pairwise masks always cancel.
These stop an honest-but-curious server. Against a *deviating* server (substituted keys, different
survivor sets or setups for different sites) a lone input stays hidden only when the sites hold a
signing identity (:mod:`ssl_fed.secagg.identity`): then every neighbour key and every consistency
signature must verify against the site's own roster. Without one, a server that lies about keys
or survivors can unmask a single site (issue 11).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg import keys
from ssl_fed.secagg.identity import (
    SiteIdentity,
    advert_message,
    check_adverts,
    check_consistency,
    survivors_message,
)
from ssl_fed.secagg.prg import derive_info
from ssl_fed.secagg.setup import RoundSetup
from ssl_fed.secagg.state import STAGES, ClientState
from ssl_fed.secagg.stream import MaskTerm, apply_masks
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

__all__ = [
    "STAGES",
    "ClientState",
    "advertise",
    "check_collect",
    "consist",
    "mask",
    "share",
    "unmask",
]


def _hexify(p: Payload) -> dict[str, Any]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in p.items()}


def advertise(
    node_id: int, request: Payload, identity: SiteIdentity | None = None
) -> tuple[ClientState, Payload]:
    """Stage 1: check the setup, draw two X25519 pairs and the self-mask seed ``b_i``.

    With an ``identity`` the site signs its keys and commitment, bound to the setup digest.
    """
    setup = RoundSetup.from_payload(request)
    if node_id not in setup.node_ids:
        raise ProtocolError(f"node {node_id} is not among the round's participants")
    sk_c, pk_c = keys.generate_keypair()
    sk_s, pk_s = keys.generate_keypair()
    seed = os.urandom(32)
    state = ClientState(node_id, _hexify(request), sk_c.hex(), sk_s.hex(), seed.hex())
    state.advance("advertise")
    commit = keys.commit_seed(setup.round_id, node_id, seed)
    signed = advert_message(setup.digest(), node_id, pk_c, pk_s, commit)
    reply = header("advertise", setup.round_id)
    reply.update(
        node_id=ids_to_bytes([node_id]),
        pk_c=pk_c,
        pk_s=pk_s,
        commit=commit,
        signer=identity.public if identity else b"",
        sig=identity.sign(signed) if identity else b"",
    )
    return state, reply


def share(
    state: ClientState, request: Payload, identity: SiteIdentity | None = None
) -> tuple[ClientState, Payload]:
    """Stage 2: Shamir-share ``b_i`` and ``s_i^SK`` to the live neighbours, encrypted pairwise.

    With an ``identity``, every neighbour's keys must carry a valid roster signature first.
    """
    setup = state.round_setup()
    check_header(request, "share", setup.round_id)
    state.advance("share")
    t0 = time.perf_counter()
    me = state.node_id
    ids = get_ids(request, "ids")
    pk_c = get_bytes_list(request, "pk_c", len(ids), keys.KEY_BYTES)
    pk_s = get_bytes_list(request, "pk_s", len(ids), keys.KEY_BYTES)
    if not set(ids) <= set(setup.neighbours()[me]) or ids != sorted(ids):
        raise ProtocolError("share request lists sites that are not my neighbours, or unsorted")
    if len(ids) < setup.shape.t:
        raise ProtocolError(
            f"only {len(ids)} live neighbours, fewer than threshold {setup.shape.t}"
        )
    if len(set(pk_c + pk_s)) != 2 * len(ids):
        raise ProtocolError("duplicate public keys among neighbours")
    commits = get_bytes_list(request, "commits", len(ids), 32)
    signers = get_bytes_list(request, "signers", len(ids))
    sigs = get_bytes_list(request, "sigs", len(ids))
    if identity is not None:
        keyset = list(zip(pk_c, pk_s, commits, strict=True))
        check_adverts(identity, setup.digest(), ids, keyset, list(zip(signers, sigs, strict=True)))
    state.peers = {str(j): [a.hex(), b.hex()] for j, a, b in zip(ids, pk_c, pk_s, strict=True)}
    b_sh = keys.split_secret(bytes.fromhex(state.seed), setup.shape.t, len(ids))
    s_sh = keys.split_secret(bytes.fromhex(state.sk_s), setup.shape.t, len(ids))
    t1 = time.perf_counter()
    sk_c = bytes.fromhex(state.sk_c)
    cts = [
        keys.encrypt_pair(sk_c, pk_c[n], setup.round_id, me, j, b_sh[n] + s_sh[n])
        for n, j in enumerate(ids)
    ]
    reply = header("share", setup.round_id)
    reply.update(
        node_id=ids_to_bytes([me]),
        ids=ids_to_bytes(ids),
        cts=cts,
        t_shamir=t1 - t0,
        t_encrypt=time.perf_counter() - t1,
    )
    return state, reply


def check_collect(state: ClientState, request: Payload) -> list[int]:
    """Validate a masked-input request *before* the site trains; return the neighbour ids.

    The mod calls this first, so a forged, replayed or out-of-order request never reaches the
    train handler (fail closed: no training on a message that is not a well-formed stage 3).
    """
    setup = state.round_setup()
    check_header(request, "collect", setup.round_id)
    if state.done != list(STAGES[:2]):
        raise ProtocolError(f"stage 'collect' out of order (answered so far: {state.done})")
    ids = get_ids(request, "ids")
    get_bytes_list(request, "cts", len(ids))
    if not set(ids) <= {int(j) for j in state.peers}:
        raise ProtocolError("collect request lists sites that did not receive my shares")
    if len(ids) < setup.shape.t:
        raise ProtocolError(f"only {len(ids)} neighbours shared keys, fewer than t={setup.shape.t}")
    return ids


def mask(
    state: ClientState, request: Payload, encoded: NDArray[np.unsignedinteger]
) -> tuple[ClientState, Payload]:
    """Stage 3: store decrypted shares and return ``y_i = x_i + PRG(b_i) + Σ ±PRG(s_ij) mod 2^b``.

    ``encoded`` is the site's weighted fixed-point vector from
    :func:`ssl_fed.secagg.quantize.encode_weighted`. The sign is ``+`` when ``i < j``, so the pair's
    two masks cancel in the sum (paper §3, eq. for ``y_u``). ``encoded`` is masked in place
    (:func:`ssl_fed.secagg.stream.apply_masks`, one pass, no copy) and becomes the reply's
    ``masked`` vector: the caller hands it over and must not reuse it.
    """
    setup = state.round_setup()
    ids = check_collect(state, request)
    state.advance("collect")
    me = state.node_id
    cts = get_bytes_list(request, "cts", len(ids))
    if encoded.dtype != setup.dtype or encoded.shape != (setup.length,):
        raise ValueError(f"encoded vector must be {setup.dtype.__name__}[{setup.length}]")
    t0 = time.perf_counter()
    sk_c = bytes.fromhex(state.sk_c)
    for j, ct in zip(ids, cts, strict=True):
        try:
            pt = keys.decrypt_pair(
                sk_c, bytes.fromhex(state.peers[str(j)][0]), setup.round_id, j, me, ct
            )
        except ValueError:
            continue
        state.held[str(j)] = [pt[: keys.SHARE_BYTES].hex(), pt[keys.SHARE_BYTES :].hex()]
    t1 = time.perf_counter()
    rid, sk_s = setup.round_id, bytes.fromhex(state.sk_s)
    terms = [MaskTerm(bytes.fromhex(state.seed), derive_info(rid, "self-mask", me), 1)]
    for j in ids:
        shared = keys.agree(sk_s, bytes.fromhex(state.peers[str(j)][1]))
        info = derive_info(rid, "pair-mask", min(me, j), max(me, j))
        terms.append(MaskTerm(shared, info, 1 if me < j else -1))
    apply_masks(encoded, terms)
    state.mask_ids = ids
    reply = header("collect", setup.round_id)
    reply.update(
        node_id=ids_to_bytes([me]),
        masked=encoded,
        t_encrypt=t1 - t0,
        t_mask=time.perf_counter() - t1,
    )
    return state, reply


def consist(
    state: ClientState, request: Payload, identity: SiteIdentity | None = None
) -> tuple[ClientState, Payload]:
    """Consistency check (Bonawitz et al. 2017, Fig. 4, round 3): sign the survivor set shown.

    The site remembers the one set ``U3`` it signed and later unmasks only by that set.
    """
    setup = state.round_setup()
    check_header(request, "consist", setup.round_id)
    state.advance("consist")
    packed = get_bytes(request, "survivor_set")
    u3 = get_ids(request, "survivor_set")
    if u3 != sorted(u3) or state.node_id not in u3 or not set(u3) <= set(setup.node_ids):
        raise ProtocolError("survivor set must be sorted participants that include me")
    if len(u3) < setup.shape.min_survivors:
        raise ProtocolError(
            f"only {len(u3)} inputs collected, fewer than {setup.shape.min_survivors}"
        )
    state.u3 = packed.hex()
    signed = survivors_message(setup.digest(), state.node_id, packed)
    reply = header("consist", setup.round_id)
    reply.update(
        node_id=ids_to_bytes([state.node_id]), sig=identity.sign(signed) if identity else b""
    )
    return state, reply


def unmask(
    state: ClientState, request: Payload, identity: SiteIdentity | None = None
) -> tuple[ClientState, Payload]:
    """Stage 4: reveal ``b_j`` shares of survivors and ``s_j^SK`` shares of dropped sites.

    Only by the survivor set this site signed: the request's survivor/dropped lists must split my
    masking neighbours exactly by it, and (with an ``identity``) it must carry at least
    ``min_survivors`` valid roster signatures on that same set, mine included.
    """
    setup = state.round_setup()
    check_header(request, "unmask", setup.round_id)
    state.advance("unmask")
    alive, dropped = get_ids(request, "survivors"), get_ids(request, "dropped")
    if get_bytes(request, "survivor_set").hex() != state.u3:
        raise ProtocolError("unmask request names another survivor set than the one I signed")
    u3 = set(get_ids(request, "survivor_set"))
    u4 = get_ids(request, "signed_ids")
    signers = get_bytes_list(request, "signers", len(u4))
    sigs = get_bytes_list(request, "sigs", len(u4))
    if set(alive) != set(state.mask_ids) & u3 or set(dropped) != set(state.mask_ids) - u3:
        raise ProtocolError("survivor/dropped lists disagree with the signed survivor set")
    if state.node_id not in u4 or not set(u4) <= u3:
        raise ProtocolError("consistency signers must be survivors and include me")
    if len(u4) < setup.shape.min_survivors:
        raise ProtocolError(
            f"only {len(u4)} consistency signatures, fewer than {setup.shape.min_survivors}"
        )
    if identity is not None:
        signed = dict(zip(u4, zip(signers, sigs, strict=True), strict=True))
        packed = bytes.fromhex(state.u3)
        check_consistency(identity, setup.digest(), packed, signed, setup.shape.min_survivors)
    t0 = time.perf_counter()
    b_ids = [j for j in alive if str(j) in state.held]
    s_ids = [j for j in dropped if str(j) in state.held]
    reply = header("unmask", setup.round_id)
    reply.update(
        node_id=ids_to_bytes([state.node_id]),
        b_ids=ids_to_bytes(b_ids),
        b_shares=[bytes.fromhex(state.held[str(j)][0]) for j in b_ids],
        s_ids=ids_to_bytes(s_ids),
        s_shares=[bytes.fromhex(state.held[str(j)][1]) for j in s_ids],
    )
    reply["t_shamir"] = time.perf_counter() - t0
    return state, reply
