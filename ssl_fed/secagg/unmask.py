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
from ssl_fed.secagg.prg import derive_info, keystream_words
from ssl_fed.secagg.setup import RoundSetup


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
    ``public_s[i]`` is survivor ``i``'s advertised mask-agreement public key.
    """
    rid, length, dtype = setup.round_id, setup.length, setup.dtype
    total = np.zeros(length, dtype=dtype)
    for i, y in masked.items():
        total += y
        total -= keystream_words(seeds[i], derive_info(rid, "self-mask", i), length, dtype)
    for j, sk in dropped_keys.items():
        for i in masked:
            if j not in forwarded[i]:
                continue
            shared = keys.agree(sk, public_s[i])
            m = keystream_words(
                shared, derive_info(rid, "pair-mask", min(i, j), max(i, j)), length, dtype
            )
            if i < j:
                total -= m
            else:
                total += m
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
