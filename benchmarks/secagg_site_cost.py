"""One site's SecAgg+ masked-input work: the streaming path against the one-shot reference.

Per repetition, both paths run back to back on the same update (interleaved, same load) and must
produce byte-identical masked vectors:

- reference (the code before issue 15): ``encode_weighted`` of the concatenated update (float64
  copies of the whole vector), one full-length ``keystream_words`` array per mask added with a
  copy, then ``Array(ndarray)`` (``np.save``) and ``Array.numpy()`` (``np.load``);
- streaming: ``encode_weighted_into`` (chunked, in place), ``apply_masks`` (each ChaCha20 stream
  read chunk by chunk into the buffer), ``masked_array`` (one copy) and ``array_view`` (no copy).

Masks: one self mask + ``--pairs`` pair masks (8 = k at 10 sites), uint32 words, q = 18.

    python benchmarks/secagg_site_cost.py --record
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flwr.app import Array

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.record import machine, update_section
from ssl_fed.fed.secagg_driver import array_view, masked_array
from ssl_fed.secagg.prg import derive_info, keystream_words
from ssl_fed.secagg.quantize import encode_weighted, encode_weighted_into
from ssl_fed.secagg.stream import MaskTerm, apply_masks

PARTS = ("encode", "mask", "frame + read")
Path_ = Callable[[np.ndarray, list[MaskTerm]], tuple[list[float], np.ndarray]]


def reference(x: np.ndarray, terms: list[MaskTerm]) -> tuple[list[float], np.ndarray]:
    """The pre-streaming site path; returns seconds per part and the vector the server reads."""
    t = [time.perf_counter()]
    if not np.all(np.isfinite(x)):  # RoundSetup.encode's former whole-array check
        raise ValueError("non-finite update")
    encoded = encode_weighted(np.concatenate([x]), 30, 4.0, 18, 32)
    t.append(time.perf_counter())
    y = encoded.copy()  # client.mask's former copy
    for m in terms:
        k = keystream_words(m.secret, m.info, y.size, np.uint32)
        if m.sign > 0:
            y += k
        else:
            y -= k
    t.append(time.perf_counter())
    back = Array(y).numpy()
    t.append(time.perf_counter())
    return list(np.diff(t)), back


def streaming(x: np.ndarray, terms: list[MaskTerm]) -> tuple[list[float], np.ndarray]:
    """The current site path (what ``secagg_mod`` and the driver run)."""
    t = [time.perf_counter()]
    y = np.empty(x.size + 2, np.uint32)
    encode_weighted_into(y, [("x", x)], 30, 4.0, 18)
    t.append(time.perf_counter())
    apply_masks(y, terms)
    t.append(time.perf_counter())
    back = array_view(masked_array(y))
    t.append(time.perf_counter())
    return list(np.diff(t)), back


def measure(n: int, pairs: int, reps: int) -> dict[str, np.ndarray]:
    """Median seconds per part for each path over ``reps`` interleaved repetitions."""
    x = np.random.default_rng(0).normal(0, 0.1, n).astype(np.float32)
    rid = b"r" * 16
    terms = [MaskTerm(b"\1" * 32, derive_info(rid, "self-mask", 0), 1)]
    terms += [
        MaskTerm(bytes([j + 2]) * 32, derive_info(rid, "pair-mask", 0, j + 1), 1 if j % 2 else -1)
        for j in range(pairs)
    ]
    paths: dict[str, Path_] = {"reference": reference, "streaming": streaming}
    times: dict[str, list[list[float]]] = {name: [] for name in paths}
    for _ in range(reps):
        outs = []
        for name, run in paths.items():
            secs, vec = run(x, terms)
            times[name].append(secs)
            outs.append(vec.tobytes())
        if outs[0] != outs[1]:
            raise SystemExit("streaming and reference masked vectors differ")
    return {name: np.median(np.array(v), axis=0) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,11M", help="parameter counts, e.g. 1M,11M")
    parser.add_argument("--pairs", type=int, default=8, help="pair masks (k)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="write the RESULTS.md section")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    lines = [
        "| params | path | " + " | ".join(f"{p} s" for p in PARTS) + " | total s | ref / new |",
        "|---|---|" + "---|" * (len(PARTS) + 2),
    ]
    for size in args.sizes.split(","):
        n = int(float(size.rstrip("Mm")) * 1_000_000)
        res = measure(n, args.pairs, args.reps)
        speedup = res["reference"].sum() / res["streaming"].sum()
        for name, secs in res.items():
            cells = " | ".join(f"{s:.3f}" for s in secs)
            ratio = f"{speedup:.2f}x" if name == "streaming" else ""
            lines.append(f"| {size} | {name} | {cells} | {secs.sum():.3f} | {ratio} |")
    body = "\n".join(
        [
            "## SecAgg+ site cost: streaming vs reference (benchmarks/secagg_site_cost.py)",
            "",
            f"Machine: {machine()}; 1-min load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after (shared machine: ratios are meaningful, absolute "
            f"seconds are not). Command: `python benchmarks/secagg_site_cost.py "
            f"{' '.join(sys.argv[1:])}`. One site, 1 self + {args.pairs} pair ChaCha20 masks, "
            f"uint32 words; median of {args.reps} interleaved repetitions; the masked vectors "
            "of both paths are checked byte-identical.",
            "",
            *lines,
        ]
    )
    print(body)
    if args.record:
        update_section("secagg_site_cost", body)


if __name__ == "__main__":
    main()
