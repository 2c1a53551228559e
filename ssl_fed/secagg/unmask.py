"""Remove every mask from the survivors' summed inputs (Bell et al., CCS 2020, Fig. 5, round 4).

``y_i = x_i + PRG(b_i) + Σ_j ±PRG(s_ij)``: summed over the survivors, the pairwise masks between
two survivors cancel; what remains is each survivor's self-mask ``PRG(b_i)`` (removed with the
rebuilt seed) and the masks a survivor shares with a dropped neighbour (removed with the dropped
site's rebuilt mask key ``s_j^SK`` and the survivor's public ``s_i^PK``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg import keys
from ssl_fed.secagg.prg import derive_info
from ssl_fed.secagg.setup import RoundSetup
from ssl_fed.secagg.stream import MaskTerm, apply_masks


def unmasked_sum(
    setup: RoundSetup,
    masked: Mapping[int, NDArray[np.unsignedinteger]],
    seeds: Mapping[int, bytes],
    dropped_keys: Mapping[int, bytes],
    forwarded: Mapping[int, list[int]],
    public_s: Mapping[int, bytes],
) -> NDArray[np.unsignedinteger]:
    """Return ``Σ_i x_i mod 2^b`` over the survivors (the keys of ``masked``).

    ``forwarded[i]`` are the neighbours whose shares survivor ``i`` received (and masked with);
    ``public_s[i]`` is survivor ``i``'s advertised mask-agreement public key. The survivors'
    vectors and every mask to remove are summed in one chunked pass
    (:func:`ssl_fed.secagg.stream.apply_masks`).
    """
    rid = setup.round_id
    terms = [MaskTerm(seeds[i], derive_info(rid, "self-mask", i), -1) for i in masked]
    for j, sk in dropped_keys.items():
        for i in masked:
            if j not in forwarded[i]:
                continue
            info = derive_info(rid, "pair-mask", min(i, j), max(i, j))
            terms.append(MaskTerm(keys.agree(sk, public_s[i]), info, -1 if i < j else 1))
    total = np.zeros(setup.length, dtype=setup.dtype)
    apply_masks(total, terms, list(masked.values()))
    return total


MAX_SUBSETS = 64


def rebuild_secret(
    shares: Mapping[int, bytes], t: int, check: Callable[[bytes], bool]
) -> bytes | None:
    """Combine ``t`` of ``shares`` into a 32-byte secret that passes ``check`` (its commitment).

    A wrong share (a cheating holder) makes a subset fail the check; up to :data:`MAX_SUBSETS`
    subsets are tried before giving up.
    """
    for combo in itertools.islice(itertools.combinations(sorted(shares), t), MAX_SUBSETS):
        try:
            secret = keys.combine_secret([shares[h] for h in combo])
        except ValueError:
            continue
        if len(secret) == 32 and check(secret):
            return secret
    return None
