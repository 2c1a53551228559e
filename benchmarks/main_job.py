"""The README's main job end to end (what `make demo` runs after set-up), timed on this machine.

Runs `ssl-fed pretrain-synthetic` into a fresh directory, then `ssl-fed simulate init=...`, as
subprocesses, and records both times, the final probe and ε in the `main_job` section of
RESULTS.md. Goal (issue 7): <= 3 minutes on 2 cores. The virtualenv set-up is not included.

Usage: python benchmarks/main_job.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import machine, update_section

CLI = str(Path(sys.executable).with_name("ssl-fed"))


def timed(cmd: list[str]) -> float:
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="keep the run here instead of a temporary directory")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="ssl-fed-main-"))
    warm, run = root / "warm-start", root / "demo"
    pretrain = timed([CLI, "pretrain-synthetic", f"out={warm}"])
    simulate = timed([CLI, "simulate", f"init={warm}", f"out={run}"])
    metrics = json.loads((run / "metrics.json").read_text())
    probe = metrics["linear_probe"]
    total = pretrain + simulate
    line = (
        f"| {pretrain:.0f} | {simulate:.0f} | {total:.0f} | "
        f"{'met' if total <= 180 else 'missed'} | "
        + " / ".join(f"{100 * probe[k]:.1f}" for k in ("1", "5", "10", "all"))
        + f" | {100 * metrics['knn_accuracy']:.1f} | {metrics['epsilon_max']:.3f} "
        f"| {metrics['rounds_completed']} |"
    )
    print(line)
    update_section(
        "main_job",
        "\n".join(
            [
                "## The main job end to end (`python benchmarks/main_job.py`)",
                "",
                f"Machine: {machine()}. `ssl-fed pretrain-synthetic` then "
                "`ssl-fed simulate init=...` "
                "(10 sites, digits, Dirichlet α=0.5, joint task, DP ε=8 per site, δ=1e-5, ssl-fed "
                "SecAgg+, 8 rounds), what `make demo` runs after the virtualenv set-up. "
                "Goal <= 180 s.",
                "",
                "| pretrain s | simulate s | total s | goal | probe k=1 / 5 / 10 / all % | kNN % "
                "| ε max | rounds |",
                "|---|---|---|---|---|---|---|---|",
                line,
            ]
        ),
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
