"""The k-regular neighbour graph of SecAgg+ (Bell et al., CCS 2020, §3.1 and §4).

Sites are placed on a ring in an order drawn from the server's seed, and each is joined to the
``k/2`` sites on either side: the random Harary graph ``H(n, k)`` the paper analyses. ``k = n - 1``
gives the complete graph (classic SecAgg). Every site can recompute the graph from the node ids,
``k`` and the seed, so a server cannot show different sites inconsistent graphs without detection
by the site itself.
"""

from __future__ import annotations

import hashlib

import numpy as np


def build_neighbours(node_ids: list[int], k: int, seed: bytes) -> dict[int, list[int]]:
    """Return each node's sorted neighbour list in the seeded random Harary graph ``H(n, k)``.

    Parameters
    ----------
    node_ids : list[int]
        Distinct ids of the sampled sites (order does not matter).
    k : int
        Degree; even, or ``n - 1`` for the complete graph.
    seed : bytes
        Server-chosen randomness for the ring order.
    """
    ids = sorted(set(node_ids))
    n = len(ids)
    if n != len(node_ids):
        raise ValueError("node_ids contain duplicates; each site must appear once")
    if not 1 <= k <= n - 1 or (k < n - 1 and k % 2):
        raise ValueError(f"k must be even and in [2, n-1] (or n-1), got k={k}, n={n}")
    if k == n - 1:
        return {i: [j for j in ids if j != i] for i in ids}
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:16], "big"))
    ring = [ids[p] for p in rng.permutation(n)]
    half = k // 2
    out: dict[int, list[int]] = {}
    for pos, i in enumerate(ring):
        near = {ring[(pos + d) % n] for d in range(-half, half + 1) if d}
        out[i] = sorted(near)
    return out
