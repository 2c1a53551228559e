"""Synthetic warm start on digits: generation time per family, and the linear-probe table.

Protocol: digits 70/30 stratified split, seed 0 (``load_splits(DataConfig())``), frozen-feature
probe at 1/5/10/all labels per class (``evaluate_encoder(model.encoder, train, test,
EvalConfig())``, 5 label draws). Rows, all measured in this one run: raw pixels, a randomly
initialised encoder, and the warm start per (family, task). The pretraining never sees digits.
Its settings were chosen on a validation split carved from the training part, never on test.

Run from the repository root: ``python -m benchmarks.warm_start_synthetic [--threads 1]``; it
prints the tables and rewrites its own section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmarks.record import machine, update_section
from ssl_fed.config import DataConfig, EvalConfig, RootConfig
from ssl_fed.data import load_splits
from ssl_fed.data.synthetic import FAMILIES, generate_synthetic
from ssl_fed.eval import EvalReport, evaluate_encoder, evaluate_raw_pixels
from ssl_fed.models import build_model
from ssl_fed.train.pretrain import pretrain_synthetic

KEYS = ("1", "5", "10", "all")


def warm_config(task: str, batch_size: int, lr: float, temperature: float) -> RootConfig:
    """The pretraining config: privacy off, so full-batch NT-Xent negatives are allowed."""
    cfg = RootConfig()
    cfg.task.name, cfg.task.negatives, cfg.task.temperature = task, "batch", temperature
    cfg.train.batch_size, cfg.train.lr, cfg.train.progress = batch_size, lr, False
    return cfg


def row(name: str, report: EvalReport, extra: str = "") -> str:
    probe = report.linear_probe
    cells = " | ".join(f"{100 * probe[k].mean:.1f} ± {100 * probe[k].std:.1f}" for k in KEYS)
    return f"| {name} | {cells} | {100 * report.knn_accuracy:.1f} | {extra} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--num-images", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument(
        "--runs", nargs="+", default=["strokes:contrastive", "dead_leaves:contrastive"]
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    gen_lines = ["| family | 8x8x1 | 32x32x1 | 32x32x3 |", "|---|---|---|---|"]
    for family in sorted(FAMILIES):
        cells = []
        for size, channels in ((8, 1), (32, 1), (32, 3)):
            t0 = time.perf_counter()
            generate_synthetic(family, 8000, image_size=size, channels=channels, seed=0)
            cells.append(f"{time.perf_counter() - t0:.2f} s")
        gen_lines.append(f"| {family} | {' | '.join(cells)} |")
    print("\n".join(gen_lines), flush=True)

    splits = load_splits(DataConfig())
    train, test = splits.train, splits.test
    assert test is not None
    ev = EvalConfig()
    head = "| features | k=1 | k=5 | k=10 | all | kNN | notes |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    rows.append(row("raw pixels", evaluate_raw_pixels(train, test, ev)))
    print(rows[-1], flush=True)
    torch.manual_seed(0)
    random_model = build_model(RootConfig().encoder, train.channels)
    rows.append(
        row("random-init encoder (seed 0)", evaluate_encoder(random_model.encoder, train, test, ev))
    )
    print(rows[-1], flush=True)
    for spec in args.runs:
        family, task = spec.split(":")
        cfg = warm_config(task, args.batch_size, args.lr, args.temperature)
        t0 = time.perf_counter()
        model, card = pretrain_synthetic(
            cfg, family=family, num_images=args.num_images, epochs=args.epochs
        )
        took = time.perf_counter() - t0
        name = f"warm start: {family}, {task}"
        note = f"{card['steps']} steps, {took:.0f} s pretraining"
        rows.append(row(name, evaluate_encoder(model.encoder, train, test, ev), note))
        print(rows[-1], flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    body = "\n".join(
        [
            "## Synthetic warm start (benchmarks/warm_start_synthetic.py)",
            "",
            f"{machine()}; 2-core-class CPU machine, no GPU; torch {torch.__version__} with "
            f"{torch.get_num_threads()} thread(s); 1-min load average at the end {load:.1f} "
            "(other jobs shared the machine, so times are upper bounds).",
            "",
            "Generation time for 8,000 images (seed 0):",
            "",
            *gen_lines,
            "",
            "Digits linear probe (test accuracy %, mean ± std over 5 label draws; 70/30 split "
            f"seed 0). Warm start: {args.num_images} synthetic images, {args.epochs} epochs, "
            f"batch {args.batch_size}, Adam lr {args.lr}, NT-Xent temperature "
            f"{args.temperature} with in-batch negatives (privacy off: no one's data), default "
            "EncoderConfig (width 32) and augmentations. No site data and no site budget used.",
            "",
            *rows,
        ]
    )
    if not args.no_write:
        update_section("warm_start_synthetic", body)
        print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
