"""Privacy-utility on digits: every row of issue 7 §1-2 and issue 6's warm-start table, in one run.

Protocol (fixed, never tuned on the test split): sklearn digits, stratified 70/30 split with
seed 0; frozen ``features()`` of the encoder; logistic-regression probe on standardized features
at 1, 5, 10 and all labels per class (mean over 5 seeded label draws) plus cosine 5-NN. All
hyperparameters are the shipped defaults of ``configs/`` (the synthetic pretraining recipe was
chosen on a validation split carved from the training part; see the warm_start_synthetic
section); nothing here was tuned on the test split.

Rows: raw pixels; random init; synthetic warm start alone; centralized non-private rotation,
contrastive and joint (one site holding all training images); federated non-private (10 sites,
Dirichlet α=0.5, IID, α=0.1); federated DP with SecAgg at ε = 1, 3, 8 per site (δ = 1e-5), from
random init and from the warm start, and from the warm start with only block 3 and the heads
trainable. Calibration and slices for the best ε=8 encoder: probe ECE, per-class accuracy and
per-site accuracy (the per-class test accuracy weighted by each site's own label histogram).

Usage: python benchmarks/utility.py [--quick] [--out outputs/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.plotting import epsilon_axis, reference_lines, save
from benchmarks.record import machine, update_section
from ssl_fed.config import load_config
from ssl_fed.data import load_splits, partition_dataset
from ssl_fed.eval import evaluate_encoder, evaluate_raw_pixels
from ssl_fed.models import build_model
from ssl_fed.train.job import load_init, run_train_local
from ssl_fed.train.pretrain import pretrain_synthetic, save_warm_start

RESTRICTED = "privacy.trainable=[encoder.block3,rotation,projection]"


def probe_row(name: str, report: dict[str, Any], eps: Any, seconds: float) -> dict[str, Any]:
    return {
        "row": name,
        "epsilon": eps,
        "probe": report["linear_probe"],
        "std": report.get("linear_probe_std"),
        "knn": report["knn_accuracy"],
        "seconds": round(seconds, 1),
    }


def simulate_row(name: str, out: Path, overrides: list[str], eps_label: Any) -> dict[str, Any]:
    from ssl_fed.fed.simulation import simulate

    start = time.time()
    metrics = simulate([*overrides, f"out={out / name}"])
    row = probe_row(
        name,
        metrics,
        metrics.get("epsilon_max") if eps_label is None else eps_label,
        time.time() - start,
    )
    row["epsilon_max"] = metrics.get("epsilon_max")
    row["rounds"] = metrics.get("rounds_completed")
    row["dir"] = name
    return row


def per_site_accuracy(per_class: dict[str, float], overrides: list[str]) -> dict[str, float]:
    """Per-class test accuracy weighted by each site's own training label histogram."""
    cfg = load_config(overrides)
    train = load_splits(cfg.data).train
    sites = partition_dataset(train, cfg.partition, cfg.sim.num_sites)
    out = {}
    for i, site in enumerate(sites):
        assert site.labels is not None
        counts = torch.bincount(site.labels, minlength=10).float()
        weights = counts / counts.sum()
        out[str(i)] = float(sum(weights[c] * per_class.get(str(c), 0.0) for c in range(10)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ε=8 rows only, fewer rounds")
    parser.add_argument(
        "--out",
        default="outputs/bench",
        help="run directories; rows already in OUT/utility.json are reused",
    )
    args = parser.parse_args()
    out = Path(args.out)
    base = load_config([])
    splits = load_splits(base.data)
    assert splits.test is not None
    rows: list[dict[str, Any]] = []
    saved = out / "utility.json"
    done = {r["row"]: r for r in json.loads(saved.read_text())} if saved.exists() else {}

    def show(row: dict[str, Any]) -> None:
        p = row["probe"]
        print(
            f"{row['row']:<44} ε={row['epsilon']!s:<6} k=1 {p['1']:.3f} k=5 {p['5']:.3f} "
            f"k=10 {p['10']:.3f} all {p['all']:.3f} knn {row['knn']:.3f} ({row['seconds']} s)",
            flush=True,
        )
        rows.append(row)
        out.mkdir(parents=True, exist_ok=True)
        (out / "utility.json").write_text(json.dumps(rows, indent=2))

    start = time.time()
    show(
        probe_row(
            "raw pixels",
            evaluate_raw_pixels(splits.train, splits.test, base.eval).to_dict(),
            None,
            time.time() - start,
        )
    )
    start = time.time()
    torch.manual_seed(0)
    random_model = build_model(base.encoder, 1)
    show(
        probe_row(
            "random init",
            evaluate_encoder(random_model.encoder, splits.train, splits.test, base.eval).to_dict(),
            None,
            time.time() - start,
        )
    )
    warm = out / "warm-start"
    start = time.time()
    if not (warm / "card.json").exists():
        pcfg = load_config([], config_name="pretrain")
        model, card = pretrain_synthetic(
            pcfg,
            family=pcfg.pretrain.family,
            num_images=pcfg.pretrain.num_images,
            epochs=pcfg.pretrain.epochs,
        )
        save_warm_start(model, card, warm)
    warm_model = build_model(base.encoder, 1)
    load_init(warm_model, str(warm))
    show(
        probe_row(
            "synthetic warm start (no site data)",
            evaluate_encoder(warm_model.encoder, splits.train, splits.test, base.eval).to_dict(),
            0,
            time.time() - start,
        )
    )

    for task in [] if args.quick else ["rotation", "contrastive", "joint"]:
        if f"centralized non-private {task}" in done:
            show(done[f"centralized non-private {task}"])
            continue
        start = time.time()
        metrics = run_train_local(
            load_config(
                [
                    f"task={task}",
                    "privacy=off",
                    "train.local_epochs=30",
                    "train.progress=false",
                    f"out={out / ('central-' + task)}",
                ]
            )
        )
        show(probe_row(f"centralized non-private {task}", metrics, "inf", time.time() - start))

    fed = ["train.progress=false"]
    nonprivate = [("α=0.5", []), ("IID", ["partition=iid"]), ("α=0.1", ["partition.alpha=0.1"])]
    for slug, (label, extra) in zip(
        ("a05", "iid", "a01"), nonprivate[: 1 if args.quick else 3], strict=False
    ):
        name = f"federated non-private, 10 sites {label}"
        show(
            done.get(name)
            or simulate_row(f"fed-nonprivate-{slug}", out, [*fed, "privacy=off", *extra], "inf")
            | {"row": name}
        )
    name = "warm start + federated non-private"
    show(
        done.get(name)
        or simulate_row("fed-warm-nonprivate", out, [*fed, "privacy=off", f"init={warm}"], "inf")
        | {"row": name}
    )
    best: tuple[float, dict[str, Any], list[str]] | None = None
    for eps in [8.0] if args.quick else [1.0, 3.0, 8.0]:
        variants = [
            ("random init", []),
            ("warm start", [f"init={warm}"]),
            ("warm start, block3+heads", [f"init={warm}", RESTRICTED]),
        ]
        for label, extra in variants:
            name = f"federated DP+SecAgg ε={eps:g}, {label}"
            overrides = [*fed, f"privacy.target_epsilon={eps}", *extra]
            row = done.get(name) or simulate_row(
                f"fed-dp-eps{eps:g}-{len(extra)}", out, overrides, eps
            ) | {"row": name}
            show(row)
            if eps == 8.0 and (best is None or row["probe"]["1"] > best[0]):
                best = (row["probe"]["1"], row, overrides)
    write_results(rows, best, out)


def write_results(rows: list[dict[str, Any]], best: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "utility.json").write_text(json.dumps(rows, indent=2))
    table = [
        "| row | ε per site | k=1 | k=5 | k=10 | all | kNN | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cell = _cells(r)
        table.append(
            f"| {r['row']} | {r['epsilon']} | {cell('1')} | {cell('5')} | "
            f"{cell('10')} | {cell('all')} | {100 * r['knn']:.1f} | {r['seconds']} |"
        )
    calib: list[str] = []
    if best is not None:
        _, row, overrides = best
        metrics = json.loads((out / row_dir(row) / "metrics.json").read_text())
        per_class = metrics.get("per_class_accuracy") or {}
        calib = [
            "",
            f"Calibration and slices of the best ε=8 encoder ({row['row']}):",
            "",
            f"- ECE of the all-labels probe: {metrics.get('ece')}",
            "- per-class accuracy: "
            + ", ".join(f"{k}: {100 * v:.1f}" for k, v in sorted(per_class.items())),
        ]
        if per_class:
            sites = per_site_accuracy(per_class, overrides)
            calib.append(
                "- per-site accuracy (per-class test accuracy weighted by the site's "
                "label histogram): "
                + ", ".join(f"site {k}: {100 * v:.1f}" for k, v in sites.items())
            )
    plot = make_plot(rows, out)
    body = "\n".join(
        [
            "## Privacy-utility on digits (`python benchmarks/utility.py`)",
            "",
            f"Machine: {machine()} (shared with other jobs; times are indicative). "
            "Probe accuracy in "
            "% on the 30% test split (mean ± std over 5 label draws; 'all' fitted once).",
            "",
            *table,
            *calib,
            "",
            f"Plot: `{plot}`" if plot else "",
        ]
    )
    update_section("utility", body)


def _cells(row: dict[str, Any]) -> Any:
    probe, std = row["probe"], row.get("std") or {}

    def cell(k: str) -> str:
        return f"{100 * probe[k]:.1f}" + (f" ± {100 * std[k]:.1f}" if std.get(k) else "")

    return cell


def row_dir(row: dict[str, Any]) -> str:
    return str(row.get("dir", ""))


def make_plot(rows: list[dict[str, Any]], out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, k in zip(axes, ["1", "5"], strict=True):
        for label in ("random init", "warm start", "warm start, block3+heads"):
            pts = sorted(
                (float(r["epsilon"]), r["probe"][k])
                for r in rows
                if r["row"].endswith(", " + label) and "DP" in r["row"]
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=f"DP fed, {label}")
        reference_lines(
            ax,
            rows,
            k,
            (
                "raw pixels",
                "synthetic warm start (no site data)",
                "federated non-private, 10 sites α=0.5",
            ),
        )
        epsilon_axis(ax, f"linear probe accuracy, {k} label(s)/class")
    return save(fig, axes, "utility.png")


if __name__ == "__main__":
    main()
