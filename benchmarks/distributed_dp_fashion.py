"""Local vs distributed DP noise on Fashion-MNIST: issue 13's hospital-scale targets.

Protocol: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv 1708.07747), all 60,000 training
images over 10 sites with Dirichlet(α = 0.5) label skew (``partition.seed`` 0); the joint task
(group-wise clipping, sensitivity 2C, C = 1); δ = 1e-5; a 28×28 synthetic warm start
(``--init``). Both noise modes run the *same* DP-FedSGD (:mod:`ssl_fed.train.fedsgd_federation`,
the real encode / SecAgg+ / decode path for distributed noise): every round each site draws a
Poisson sample at the public rate ``q`` and sends its clipped unit-gradient sum; the server takes
one Adam step with the sum over the expected total batch ``q · Σ n_i``, where the n_i are the
partition plan's site sizes (the sizes an operator declares; the plan is a public function of the
seed). σ is calibrated per mode by its own accountant (Opacus RDP for local, the Skellam RDP
bound for distributed; :func:`plan_noise`), m = min_noisy_sites = 5 of 10.

Why DP-FedSGD makes the full data set affordable: a round costs ``sites × q · n_site`` images,
independent of the data-set size, unlike issue 14's 8 rounds × 2 local epochs over 60,000.

Probe: frozen ``features()``, logistic regression at 1/5/10 labels per class (5 label draws)
and 'all', scored on the official 10,000-image test split. Labels come from a stratified
*probe pool* of the training split (``--pool`` per class, default 1,000: 'all' means the
10,000 pool labels, not 60,000, to keep feature extraction affordable on 2 cores; k-shot draws
from a random pool are distributed as draws from the whole split). ``--val`` scores on a
disjoint stratified slice of the training split instead of the test split: the server learning
rate is chosen that way, never on the test split.

Rows (``--rows``, in run order after the warm start): ``mode:ε`` with mode ``local`` or
``distributed``; ``clip-only:inf`` is a non-private control (same rounds, clipping, no noise)
that tells what the noise costs from what so few one-step rounds can learn at all.

Targets (issue 13): distributed ε = 8 ≥ warm start + 5 at k = 10; distributed ε = 3 ≥ local
ε = 3 + 3 at k = 10. The verdict lines are computed from the rows of the same run.

Usage: nice -n 10 python benchmarks/distributed_dp_fashion.py --init DIR [--rounds R] [--q Q]
       [--lr LR] [--rows distributed:8 local:3 distributed:3 local:8] [--val] [--record]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from numpy.typing import NDArray

from benchmarks.distributed_dp import BITS, CLIP, DELTA, SITES, _ddp_terms, build, measured_std
from benchmarks.record import machine, update_section
from ssl_fed.config import load_config
from ssl_fed.data import DataSplits, load_splits, partition_dataset
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.idx import FASHION_MNIST_DIR
from ssl_fed.eval.linear_probe import probe_label_efficiency, sample_per_class
from ssl_fed.eval.report import extract_features
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd import expected_total_batch, trainable_dim
from ssl_fed.train.fedsgd_federation import Federation, NoisePlan, plan_noise
from ssl_fed.train.server_opt import ServerOptimizer

SECTION = "distributed_dp_fashion"
VAL_PER_CLASS = 200
TRAINABLE = ["encoder.block3", "rotation", "projection"]
CONTROL = "clip-only"
"""Row mode ``clip-only:inf``: the same DP-FedSGD with clipping and no noise (not private), to
tell the noise's cost apart from what 'rounds' one-step rounds can learn at all."""
ROWS = ["distributed:8", "local:3", "distributed:3", "local:8"]
LABELS = [1, 5, 10, -1]
TARGETS = (("distributed:8", None, 5.0), ("distributed:3", "local:3", 3.0))
"""(row, reference row or None for the warm start, required gain at k = 10 in points)."""


@dataclass(frozen=True)
class FashionFederation:
    """The config, the splits, the 10 sites, the probe pool and the validation slice."""

    cfg: Any
    splits: DataSplits
    sites: list[ImageDataset]
    pool: ImageDataset
    val: ImageDataset


def load_federation(data_dir: str, pool_per_class: int, val_per_class: int) -> FashionFederation:
    """Load Fashion-MNIST from ``data_dir`` and partition *all* training images into the sites.

    The pool and the validation slice are disjoint stratified subsets of the training split,
    used only for their labels (the sites' pretext training never sees a label).
    """
    cfg = load_config(["data=fashion_mnist", f"data.path={data_dir}"])
    splits = load_splits(cfg.data)
    if splits.test is None or splits.train.labels is None:
        raise ValueError(f"{data_dir}: Fashion-MNIST needs labelled train and t10k files")
    sites = partition_dataset(splits.train, cfg.partition, SITES)
    labels = splits.train.labels.numpy()
    pool = sample_per_class(labels, pool_per_class, seed=0)
    rest = np.setdiff1d(np.arange(labels.size), pool)
    val = rest[sample_per_class(labels[rest], val_per_class, seed=1)]
    return FashionFederation(
        cfg, splits, sites, _subset(splits.train, pool), _subset(splits.train, val)
    )


def _subset(data: ImageDataset, index: NDArray[np.int64]) -> ImageDataset:
    assert data.labels is not None
    idx = torch.from_numpy(index)
    return ImageDataset(data.images[idx], data.labels[idx], source=f"{data.source} (subset)")


def probe(encoder: torch.nn.Module, pool: ImageDataset, test: ImageDataset) -> dict[str, float]:
    """Probe accuracy in % per label budget (mean over 5 draws; 'all' = the pool, fitted once)."""
    assert pool.labels is not None and test.labels is not None
    res = probe_label_efficiency(
        extract_features(encoder, pool.images),
        pool.labels.numpy(),
        extract_features(encoder, test.images),
        test.labels.numpy(),
        labels_per_class=LABELS,
        draws=5,
        seed=0,
    )
    return {k: round(100 * r.mean, 1) for k, r in res.items()}


def verdict(rows: list[dict[str, Any]], row: str, ref: str | None, need: float) -> str:
    """One line per target: the k = 10 gain of ``row`` over ``ref`` and met / missed by X."""
    by = {r["row"]: r["probe"]["10"] for r in rows if "10" in r["probe"]}
    base = "warm start" if ref is None else ref
    if row not in by or base not in by:
        return f"{row} vs {base} + {need:g}: not measured in this run"
    gain = by[row] - by[base]
    tail = "met" if gain >= need else f"missed by {need - gain:.1f} points"
    return f"{row} vs {base} + {need:g} at k=10: {by[row]} vs {by[base]} ({gain:+.1f}): {tail}"


def noise_plan(mode: str, eps: float, args: Any, dim: int, units: int) -> NoisePlan:
    """σ for ``args.rounds`` rounds at rate ``args.q`` from the mode's own accountant."""
    if mode == CONTROL:
        return NoisePlan("local", 0.0, math.inf, 2.0, CLIP)
    return plan_noise(
        mode, target_epsilon=eps, delta=DELTA, sample_rate=args.q, rounds=args.rounds,
        sensitivity=2.0, clip=CLIP, dim=dim, bits=BITS, num_sites=SITES, min_noisy_sites=5,
        max_units=units,
    )  # fmt: skip


def run_row(spec: str, fed: FashionFederation, scored: ImageDataset, args: Any) -> dict[str, Any]:
    """Calibrate σ, measure the released noise, train ``rounds`` rounds and probe one row."""
    mode, eps = spec.split(":")
    task = build(fed.cfg, fed.splits, args.init, TRAINABLE)
    dim = trainable_dim(task)
    sizes = [len(s) for s in fed.sites]
    plan = noise_plan(mode, float(eps), args, dim, sum(sizes))
    std = measured_std(plan, dim)
    load0, t0 = os.getloadavg()[0], time.time()
    opt = ServerOptimizer(task, "adam", args.lr, expected_total_batch(args.q, sizes))
    units = plan_units(task, fed.cfg.task, max(1, round(args.q * max(sizes))))
    run = Federation(task, fed.sites, units, args.q, plan, opt)
    skipped = sum(1 for r in range(args.rounds) if run.run_round(r)["skipped"])
    train_s = time.time() - t0
    return {
        "row": spec,
        "sigma": round(plan.noise_multiplier, 4),
        "epsilon": round(plan.epsilon, 4),
        "noise_std": round(std, 4),
        "expected_std": round(plan.aggregate_std(SITES), 4),
        "ddp": _ddp_terms(plan) if plan.ddp is not None else None,
        "train_s": round(train_s, 1),
        "skipped": skipped,
        "probe": {} if args.no_probe else probe(task.model.encoder, fed.pool, scored),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "dim": dim,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", required=True, help="28x28 synthetic warm start dir")
    parser.add_argument("--data", default=FASHION_MNIST_DIR)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--q", type=float, default=0.01, help="public Poisson rate per site")
    parser.add_argument("--lr", type=float, default=3e-3, help="server Adam learning rate")
    parser.add_argument("--rows", nargs="+", default=ROWS, help="mode:epsilon, in run order")
    parser.add_argument("--pool", type=int, default=1000, help="probe labels per class")
    parser.add_argument("--val", action="store_true", help="score on a train slice, not test")
    parser.add_argument("--no-probe", action="store_true", help="timing only")
    parser.add_argument("--out", default="outputs/bench-ddp-fashion")
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--section", default=SECTION, help="RESULTS.md section name")
    parser.add_argument("--from-json", help="only render a saved result into RESULTS.md")
    args = parser.parse_args()
    if args.from_json:
        update_section(args.section, render(json.loads(Path(args.from_json).read_text())))
        return
    started, load0 = time.time(), os.getloadavg()[0]
    fed = load_federation(args.data, args.pool, VAL_PER_CLASS)
    assert fed.splits.test is not None
    scored = fed.val if args.val else fed.splits.test
    rows: list[dict[str, Any]] = []
    if not args.no_probe:
        warm = build(fed.cfg, fed.splits, args.init, TRAINABLE)
        rows.append({"row": "warm start", "probe": probe(warm.model.encoder, fed.pool, scored)})
        print(rows[-1], flush=True)
    result = save(args, fed, rows, started, load0)
    for spec in args.rows:
        rows.append(run_row(spec, fed, scored, args))
        print(rows[-1], flush=True)
        result = save(args, fed, rows, started, load0)
    print("\n".join(result["verdicts"]), flush=True)
    if args.record and not args.val:
        update_section(args.section, render(result))


def save(
    args: Any, fed: FashionFederation, rows: list[dict[str, Any]], started: float, load0: float
) -> dict[str, Any]:
    """Write the rows so far (a run cut short keeps them; ``--from-json`` renders them)."""
    result = {
        "args": {k: v for k, v in vars(args).items() if k not in ("record", "from_json")},
        "sizes": [len(s) for s in fed.sites],
        "rows": rows,
        "verdicts": [verdict(rows, *t) for t in TARGETS],
        "seconds": round(time.time() - started, 1),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "machine": machine(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"r{args.rounds}-q{args.q:g}-lr{args.lr:g}{'-val' if args.val else ''}.json"
    (out / name).write_text(json.dumps(result, indent=2))
    return result


def render(r: dict[str, Any]) -> str:
    """The RESULTS.md section (written only from a test-split run)."""
    a = r["args"]
    cmd = (
        f"nice -n 10 python benchmarks/distributed_dp_fashion.py --init {a['init']} "
        f"--rounds {a['rounds']} --q {a['q']:g} --lr {a['lr']:g} --rows {' '.join(a['rows'])} "
        f"--pool {a['pool']}"
        + ("" if a.get("section", SECTION) == SECTION else f" --section {a['section']}")
        + " --record"
    )
    lines = [
        f"## Distributed vs local DP noise on Fashion-MNIST (`{cmd}`)",
        "",
        f"Machine: {r['machine']}; 1-min load average before / after {r['load'][0]} / "
        f"{r['load'][1]} (shared: ratios are meaningful, absolute seconds are not); total "
        f"{r['seconds']} s. All 60,000 training images over 10 sites (Dirichlet α=0.5, sizes "
        f"{r['sizes']}), joint task (sensitivity 2C, C=1), δ=1e-5, DP-FedSGD with server Adam "
        f"(lr {a['lr']:g}, every row), {a['rounds']} rounds, q = {a['q']:g} per site, "
        f"trainable {TRAINABLE} (d = {r['rows'][-1].get('dim', '?')}), m = 5 of 10. Probe on "
        f"the official 10,000-image test split; labels from a stratified pool of "
        f"{a['pool']} per class ('all' = the pool); mean of 5 label draws.",
        "",
        "| row | σ | ε spent | noise std of the sum (measured) | expected | k=1 | k=5 | k=10 "
        "| all | train s | load before/after | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        p = row["probe"]
        lines.append(
            f"| {row['row']} | {row.get('sigma', '')} | {row.get('epsilon', '')} | "
            f"{row.get('noise_std', '')} | {row.get('expected_std', '')} | "
            + " | ".join(str(p.get(k, "")) for k in ("1", "5", "10", "all"))
            + f" | {row.get('train_s', '')} | {'/'.join(map(str, row.get('load', [])))} | "
            f"{row.get('skipped', '')} |"
        )
    lines += ["", "Targets (issue 13, k = 10):", ""]
    lines += [f"- {v}" for v in r["verdicts"]]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
