"""Tables of `benchmarks/secagg_round.py` (formatting only): ratios, the time split, the section.

``render`` turns the measured rows (per method: per-repetition seconds, max error, and for
ssl-fed the per-round time split) into the RESULTS.md section; nothing here measures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from benchmarks.record import machine

SPLIT_KEYS = [
    ("mask generation (sites, summed)", "sites.mask"),
    ("fixed-point encoding (sites, summed)", "sites.encode"),
    ("mask removal (server)", "server.mask"),
    ("Shamir split (sites, summed)", "sites.shamir"),
    ("Shamir combine (server)", "server.shamir"),
    ("encryption + decryption (sites, summed)", "sites.encrypt"),
    ("serialization (sites summed + server)", "serialize"),
    ("train handler (sites, summed)", "sites.train"),
    ("stage advertise (wall)", "stage.advertise"),
    ("stage share (wall)", "stage.share"),
    ("stage collect (wall)", "stage.collect"),
    ("stage consist (wall)", "stage.consist"),
    ("stage unmask (wall)", "stage.unmask"),
]
GOAL = 1.5
"""Issue 15: an ssl-fed SecAgg+ round costs at most 1.5x a plain round."""

Row = tuple[int, int, dict[str, Any]]


def _mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def _split_value(split: dict[str, float], key: str) -> float:
    if key == "serialize":
        return split.get("sites.serialize", 0.0) + split.get("server.serialize", 0.0)
    return split.get(key, 0.0)


def ratio_table(rows: list[Row]) -> list[str]:
    """Mean seconds per method and the ratios; per-repetition ours/plain range in brackets."""
    lines = [
        "| params | sites | plain s | ssl-fed SecAgg+ s | stock SecAgg+ s | ours / plain "
        "(per-rep range) | stock / plain | goal ours/plain <= 1.5x | max err ours | "
        "max err stock |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_params, n_sites, out in rows:
        p, o = _mean(out["plain"][0]), _mean(out["ours"][0])
        per = [a / b for a, b in zip(out["ours"][0], out["plain"][0], strict=True)]
        st = out.get("stock")
        s_txt = f"{_mean(st[0]):.3f}" if st else "not run"
        s_ratio = f"{_mean(st[0]) / p:.2f}x" if st else "n/a"
        s_err = f"{st[1]:.1e}" if st else "n/a"
        goal = "met" if o / p <= GOAL else f"missed by {o / p - GOAL:.2f}x"
        lines.append(
            f"| {n_params / 1e6:g}M | {n_sites} | {p:.3f} | {o:.3f} | {s_txt} | {o / p:.2f}x "
            f"({min(per):.2f}-{max(per):.2f}) | {s_ratio} | {goal} | {out['ours'][1]:.1e} | "
            f"{s_err} |"
        )
    return lines


def split_table(rows: list[Row]) -> list[str]:
    """Mean seconds per round of each part of the ssl-fed round, one column per row."""
    head = "| part | " + " | ".join(f"{p / 1e6:g}M x {n}" for p, n, _ in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    for label, key in SPLIT_KEYS:
        vals = [_mean([_split_value(s, key) for s in out["ours"][2]]) for _, _, out in rows]
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return lines


def render(rows: list[Row], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    command = "python benchmarks/secagg_round.py " + " ".join(sys.argv[1:])
    lines = [
        "## SecAgg round cost (benchmarks/secagg_round.py)",
        "",
        f"Machine: {machine()}, no GPU; Ray simulation with num_cpus=1 per client. "
        f"1-min load average {loads[0]:.1f} before, {loads[1]:.1f} after (the machine is shared: "
        "ratios are meaningful, absolute seconds are not). "
        f"Command: `{command.strip()}`; {args.warmup} warm-up + {args.rounds} timed "
        "repetitions, each running the methods back to back (interleaved, same load), mean "
        "seconds per round; trivial client compute (protocol + transport only).",
        "",
        "ssl-fed SecAgg+: k = min(n-1, 2*ceil(log2 n)) neighbours, t = k//2+1, 256-bit ChaCha20 "
        "masks streamed into the masked buffer, uint32 words, clip 4.0, signed keys off "
        "(no identities in this benchmark), consistency round on. Stock: Flower 1.42 "
        f"`SecAggPlusWorkflow` (num_shares={args.stock_shares or 'k+1, our neighbourhood'}, "
        "threshold=shares//2+1, clip 4.0, max_weight 1000, int64 words, 32-bit-seeded masks) on "
        "the legacy `DefaultWorkflow`, one round per repetition. Plain: one "
        "`grid.send_and_receive` train round + numpy weighted mean (what the Message-API "
        "FedAvg does).",
        "",
        *ratio_table(rows),
        "",
        "Time split of the ssl-fed round (seconds per round; site times summed over sites, "
        "which run 2 at a time; stage walls include transport and Ray scheduling):",
        "",
        *split_table(rows),
    ]
    return "\n".join(lines) + "\n"
