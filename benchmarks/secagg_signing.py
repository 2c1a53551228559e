"""Cost of malicious-server hardening: one in-process SecAgg+ round with and without signatures.

Signatures (Ed25519) add, per site and round: one signature on its keys, ``k`` verifications of
its neighbours' keys, one signature on the survivor set and ``|U4|`` verifications of the others'.
Run: ``python benchmarks/secagg_signing.py`` (prints median seconds per round over 5 repeats).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ssl_fed.secagg import SecAggConfig, run_local_round
from ssl_fed.secagg.identity import generate_identities

SPEC = [("w", (64, 64)), ("b", (64,))]


def one_round(n: int, signed: bool) -> float:
    """Seconds for one full round of ``n`` sites (all survive)."""
    ids = list(range(1, n + 1))
    rng = np.random.default_rng(0)
    inputs = {i: ({k: rng.uniform(-0.1, 0.1, s) for k, s in SPEC}, 1) for i in ids}
    identities = dict(zip(ids, generate_identities(n), strict=True)) if signed else None
    cfg = SecAggConfig(clip_range=0.5, max_weight=1, fixed_weight=1)
    t0 = time.perf_counter()
    run_local_round(inputs, SPEC, cfg, identities=identities)
    return time.perf_counter() - t0


def main() -> None:
    """Print the median round time for 5, 10 and 20 sites, unsigned vs signed."""
    for n in (5, 10, 20):
        plain = statistics.median(one_round(n, False) for _ in range(5))
        signed = statistics.median(one_round(n, True) for _ in range(5))
        extra = (signed - plain) / n * 1000
        print(f"n={n:2d}  unsigned {plain:.3f} s  signed {signed:.3f} s  (+{extra:.1f} ms/site)")


if __name__ == "__main__":
    main()
