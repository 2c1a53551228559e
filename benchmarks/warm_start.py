"""Issue 6's warm-start table, formatted from the rows `benchmarks/utility.py` measured.

The warm-start rows (raw pixels, random init, synthetic warm start alone, warm start + DP
federated adaptation at ε = 1, 3, 8 with all parameters and with block 3 + heads, warm start +
non-private federated adaptation) are measured once, in the same run as every other utility row,
by `python benchmarks/utility.py`; this script reads `OUT/utility.json`, checks the targets, and
writes the `warm_start` section of RESULTS.md. Measuring them twice would only add noise.

Usage: python benchmarks/utility.py && python benchmarks/warm_start.py [--out outputs/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import machine, update_section

ROWS = [
    "raw pixels",
    "random init",
    "synthetic warm start (no site data)",
    "warm start + federated non-private",
]
TARGET = {"1": 0.757, "5": 0.894}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench")
    args = parser.parse_args()
    rows = {r["row"]: r for r in json.loads((Path(args.out) / "utility.json").read_text())}
    chosen = [rows[n] for n in ROWS if n in rows]
    chosen += [r for n, r in rows.items() if "DP" in n and "warm start" in n]
    table = ["| row | ε | k=1 | k=5 | k=10 | all |", "|---|---|---|---|---|---|"]
    for r in chosen:
        p = r["probe"]
        table.append(
            f"| {r['row']} | {r['epsilon']} | {100 * p['1']:.1f} | {100 * p['5']:.1f} "
            f"| {100 * p['10']:.1f} | {100 * p['all']:.1f} |"
        )
    print("\n".join(table))
    raw, warm = rows["raw pixels"]["probe"], rows["synthetic warm start (no site data)"]["probe"]
    verdicts = [
        f"- warm start alone beats raw pixels at k=1 and k=5: "
        f"{warm['1'] > raw['1'] and warm['5'] > raw['5']} "
        f"({100 * warm['1']:.1f}/{100 * warm['5']:.1f} vs {100 * raw['1']:.1f}/"
        f"{100 * raw['5']:.1f})"
    ]
    for name, r in rows.items():
        if "DP" in name and "warm start" in name and float(r["epsilon"]) == 8.0:
            p = r["probe"]
            verdicts.append(
                f"- {name}: {100 * p['1']:.1f}/{100 * p['5']:.1f} vs target "
                f"{100 * TARGET['1']:.1f}/{100 * TARGET['5']:.1f} -> k=1 "
                f"{'met' if p['1'] >= TARGET['1'] else 'missed'}, k=5 "
                f"{'met' if p['5'] >= TARGET['5'] else 'missed'}; change vs warm start "
                f"{100 * (p['1'] - warm['1']):+.1f}/{100 * (p['5'] - warm['5']):+.1f}"
            )
    print("\n".join(verdicts))
    update_section(
        "warm_start",
        "\n".join(
            [
                "## Warm start + DP adaptation (`python benchmarks/warm_start.py`, "
                "rows from utility.py)",
                "",
                f"Machine: {machine()}. Same protocol as the utility section.",
                "",
                *table,
                "",
                *verdicts,
            ]
        ),
    )


if __name__ == "__main__":
    main()
