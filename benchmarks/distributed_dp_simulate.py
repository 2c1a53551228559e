"""Local vs distributed DP noise through the real Flower simulation (``ssl-fed simulate``).

The companion of ``benchmarks/distributed_dp.py`` (which runs the in-process DP-FedSGD
federation): here each cell is one ``ssl-fed simulate`` run, so the numbers include the Flower
round loop, ssl-fed's SecAgg+ over the grid, the sites' ledgers and the guard. Same federation in
both modes: digits, 10 sites, Dirichlet α = 0.5, the synthetic warm start, the joint task,
``data.public_size`` and ``train.batch_size`` fixed (so both modes sample at the same q), the
same rounds. ``local`` is today's behaviour (each site runs local DP-SGD for
``train.local_epochs`` per round with its full noise; FedAvg of the deltas); ``distributed`` is
DP-FedSGD (one step per round, Skellam shares, one server Adam step at ``train.lr``). The probe
is the simulation's own evaluation (pooled benchmark on the sites' images, outside the DP
guarantee; simulation only). ε per site is read from the run's metrics (the sites' ledgers).

Usage: python benchmarks/distributed_dp_simulate.py [--eps 3 8] [--rounds 5] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import machine, update_section

COMMON = [
    "data.public_size=100",
    "train.batch_size=32",
    "privacy.trainable=[encoder.block3,rotation,projection]",
    "eval.labels_per_class=[1,10]",
    "eval.draws=3",
]


def run_one(mode: str, eps: float, args: argparse.Namespace) -> dict[str, Any]:
    """One ``ssl-fed simulate`` run; return its metrics summary and wall time."""
    out = Path(args.out) / f"{mode}-eps{eps:g}"
    cmd = [
        sys.executable, "-m", "ssl_fed.cli", "simulate", f"init={args.init}",
        f"privacy.noise={mode}", f"privacy.target_epsilon={eps}", f"sim.rounds={args.rounds}",
        f"out={out}", *COMMON,
    ]  # fmt: skip
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    m = json.loads((out / "metrics.json").read_text())
    hist = m["history"]
    secagg = [h["timings"]["round"] for h in hist if "round" in h.get("timings", {})]
    ddp = [h["ddp"] for h in hist if h.get("ddp")]
    return {
        "mode": mode,
        "eps": eps,
        "probe": m["linear_probe"],
        "knn": m["knn_accuracy"],
        "epsilon_max": m["epsilon_max"],
        "skipped": m["skipped_rounds"],
        "secagg_round_s": sum(secagg) / max(len(secagg), 1),
        "noise_std": ddp[0]["privacy/noise_std_aggregate"] if ddp else None,
        "wrap_margin_sd": ddp[0]["secagg/wrap_margin_sd"] if ddp else None,
        "wall_s": time.time() - t0,
    }


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The RESULTS.md section."""
    eps = " ".join(f"{e:g}" for e in args.eps)
    lines = [
        "## Distributed vs local DP noise through `ssl-fed simulate` "
        f"(`python benchmarks/distributed_dp_simulate.py --rounds {args.rounds} --eps {eps} "
        "--record`)",
        "",
        f"Machine: {machine()} (shared; times indicative). Digits, 10 sites, Dirichlet α=0.5, "
        f"synthetic warm start, {args.rounds} rounds, `{' '.join(COMMON)}`, δ=1e-5. Probe: the "
        "simulation's pooled benchmark evaluation (outside the DP guarantee), 3 label draws. "
        "Noise std of the released sum: distributed only (per coordinate, float units, "
        "`privacy/noise_std_aggregate`); local mode noises each site's multi-step delta, which "
        "has no comparable single number here (see the in-process benchmark above for both).",
        "",
        "| mode | ε target | ε spent (max site) | k=1 | k=10 | kNN | noise std of the sum | "
        "wrap margin (sd) | SecAgg round s (incl. site compute) | run s | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        std = "n/a" if r["noise_std"] is None else f"{r['noise_std']:.3f}"
        wrap = "n/a" if r["wrap_margin_sd"] is None else f"{r['wrap_margin_sd']:.1f}"
        lines.append(
            f"| {r['mode']} | {r['eps']:g} | {r['epsilon_max']:.3f} | "
            f"{100 * r['probe']['1']:.1f} | {100 * r['probe']['10']:.1f} | {100 * r['knn']:.1f} | "
            f"{std} | {wrap} | {r['secagg_round_s']:.2f} | {r['wall_s']:.0f} | {r['skipped']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="outputs/warm-start", help="synthetic warm start dir")
    parser.add_argument("--eps", type=float, nargs="+", default=[3.0, 8.0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="outputs/bench-ddp-sim")
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--from-json", help="only render a saved result.json")
    args = parser.parse_args()
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text())
    else:
        rows = []
        for eps in args.eps:
            for mode in ("local", "distributed"):
                rows.append(run_one(mode, eps, args))
                print(rows[-1], flush=True)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "result.json").write_text(json.dumps(rows, indent=1))
    text = render(rows, args)
    print(text)
    if args.record:
        update_section(f"distributed_dp_simulate_{args.rounds}", text)


if __name__ == "__main__":
    main()
