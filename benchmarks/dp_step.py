"""DP step / plain step time, side by side in one run, for the default encoder.

For each (input size, batch, task) the same units (per-image for rotation, random groups of 4
for joint) go through the plain step and the DP-SGD step by each ``privacy.grad_method``
(``ghost``: ghost-norm clipping with book-keeping, no per-unit gradients; ``hooks`` and ``vmap``:
per-unit gradients clipped by Opacus' DPOptimizer), interleaved, and the median of the ratios is
reported. The main job's configuration is digits 8x8, joint, batch 128; 28x28 is Fashion-MNIST's
size. Goal (not a test): <= 1.5x. Anchor: Opacus DP-SGD costs 2.6-8x a plain step
(arXiv 2406.17298).

Usage: python benchmarks/dp_step.py [--repeats 7] [--quick] [--record] [--sizes 8,28,32]
[--max-batch-above-8 128]
(``--record`` writes the table into benchmarks/RESULTS.md.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import machine, update_section
from ssl_fed.config import AugmentConfig, EncoderConfig, TaskConfig
from ssl_fed.models import build_model
from ssl_fed.privacy.dpsgd import DPSGDStep, PlainStep
from ssl_fed.tasks import build_task, form_units, plan_units
from ssl_fed.tasks.units import gather_units

METHODS = ("ghost", "hooks", "vmap")
MAIN_JOB = (8, 1, 128, "joint")
"""The main job's configuration: digits 8x8, task joint, train.batch_size 128."""
GOAL = 1.5


def make(task_name: str, size: int, channels: int):
    model = build_model(EncoderConfig(), channels)
    cfg = TaskConfig(name=task_name, group_size=4)
    return build_task(model, cfg, AugmentConfig(), size, channels), cfg


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(task_name: str, size: int, channels: int, batch: int, repeats: int):
    task, cfg = make(task_name, size, channels)
    plan = plan_units(task, cfg, batch)
    params = [p for _, p in task.trainable_named_parameters()]
    plain = PlainStep(task, torch.optim.SGD(params, lr=1e-3), batch)
    private = {
        method: DPSGDStep(
            task,
            torch.optim.SGD(params, lr=1e-3),
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            sensitivity=plan.sensitivity or 1.0,
            expected_batch_size=batch,
            method=method,
        )
        for method in METHODS
    }
    torch.manual_seed(0)
    views = task.make_views(torch.rand(batch, channels, size, size))
    index, mask = form_units(batch, plan, torch.Generator().manual_seed(0))
    units = gather_units(views, index)
    plain(units, mask)
    for step in private.values():
        step(units, mask)  # warm-up
    plain_t: list[float] = []
    dp_t: dict[str, list[float]] = {m: [] for m in METHODS}
    ratios: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(repeats):
        p = timed(lambda: plain(units, mask))
        plain_t.append(p)
        for method, step in private.items():
            d = timed(lambda s=step: s(units, mask))
            dp_t[method].append(d)
            ratios[method].append(d / p)
    return (
        statistics.median(plain_t),
        {m: statistics.median(v) for m, v in dp_t.items()},
        {m: statistics.median(v) for m, v in ratios.items()},
    )


def load() -> str:
    """The 1-minute load average (the machine is shared: ratios are meaningful, seconds not)."""
    return f"{os.getloadavg()[0]:.1f}"


def verdict(ratio: float) -> str:
    """Goal met, or missed by how much."""
    if ratio <= GOAL:
        return "met"
    return f"missed by {ratio - GOAL:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="the main job's case only")
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--sizes", default="8,28,32", help="input sizes to run, e.g. 8,28")
    parser.add_argument("--max-batch-above-8", type=int, default=128, help="skip larger batches")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cases = [(8, 1, 64), (8, 1, 128), (28, 1, 64), (28, 1, 128), (32, 3, 64), (32, 3, 128)]
    sizes = {int(x) for x in args.sizes.split(",")}
    cases = [c for c in cases if c[0] in sizes and (c[0] == 8 or c[2] <= args.max_batch_above_8)]
    tasks = (("rotation", "per image"), ("joint", "groups of 4"))
    if args.quick:
        cases, tasks = [MAIN_JOB[:3]], (("joint", "groups of 4"),)
    rows = [
        "| input | batch | task (units) | plain ms | DP ghost ms | DP hooks ms | DP vmap ms "
        "| ghost / plain | hooks / plain | vmap / plain | ghost vs goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    before = load()
    for size, channels, batch in cases:
        for task_name, units in tasks:
            p, d, r = measure(task_name, size, channels, batch, args.repeats)
            main_job = " (main job)" if (size, channels, batch, task_name) == MAIN_JOB else ""
            row = (
                f"| {channels}x{size}x{size} | {batch} | {task_name} ({units}){main_job} "
                f"| {p * 1e3:.0f} | {d['ghost'] * 1e3:.0f} | {d['hooks'] * 1e3:.0f} "
                f"| {d['vmap'] * 1e3:.0f} | {r['ghost']:.2f}x | {r['hooks']:.2f}x "
                f"| {r['vmap']:.2f}x | {verdict(r['ghost'])} |"
            )
            print(row, flush=True)
            rows.append(row)
    after = load()
    print(f"1-min load average: {before} before, {after} after")
    body = "\n".join(
        [
            f"## DP step / plain step (`python benchmarks/dp_step.py {' '.join(sys.argv[1:])}`)",
            "",
            f"Machine: {machine()}; 1-min load average {before} before the run, {after} after "
            "(a shared machine: the ratios, measured interleaved under the same load, are "
            "meaningful; the absolute milliseconds are not). Default encoder (cnn_gn, width 32, "
            f"~93k encoder parameters), SGD, {torch.get_num_threads()} torch thread(s). "
            "`ghost`: clipped sum from per-unit ghost norms and book-keeping, no per-unit "
            "gradients "
            "(`ssl_fed/privacy/ghost.py`); `hooks` (one batched pass, rows contracted per unit) "
            "and `vmap` (torch.func over units) materialize per-unit gradients for Opacus' "
            f"DPOptimizer. Median of {args.repeats} interleaved repeats of each ratio. "
            f"Goal <= {GOAL}x.",
            "",
            *rows,
        ]
    )
    if args.record:
        update_section(
            "dp_step" if args.threads is None else f"dp_step_threads{args.threads}", body
        )


if __name__ == "__main__":
    main()
