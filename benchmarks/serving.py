"""Serving cost of the released encoder: fp32 / int8 / distilled / distilled + int8 (issue 19).

Exports the run's encoder to ONNX with an int8 copy (`ssl-fed export --format onnx --quantize
int8`), distils a narrower student on synthetic images (`ssl-fed distill`, also with an int8
copy), then measures each with onnxruntime on this CPU: parameters, file size, latency per image
at batch 1 and throughput at batch 256 (1 and 2 intra-op threads, median of repeats), and the
linear probe on digits' public split at 10 labels per class and all labels. Records the
`serving` section of RESULTS.md with the machine's load average, and the targets met or missed.

Usage: python benchmarks/serving.py --run RUN_FOLDER [--width 12] [--out DIR]
       python benchmarks/serving.py --warm-start DIR   (a `pretrain-synthetic` encoder instead)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.record import machine, update_section
from ssl_fed.export import FeatureEncoder, export_run, load_run, write_card, write_encoder
from ssl_fed.models import ConvGNEncoder
from ssl_fed.serve.distill import DistillOptions, distill
from ssl_fed.serve.probe import probe_public
from ssl_fed.serve.quantize import quantize_export, synthetic_images
from ssl_fed.serve.runtime import load_served
from ssl_fed.train.pretrain import load_warm_start

TARGETS = "int8: >= 3x smaller, >= 1.5x fp32 throughput at batch 256, <= 1 point probe loss; "
TARGETS += "distilled: >= 4x fewer parameters, <= 2 points probe loss"


def export_warm_start(warm: Path, out: Path) -> int:
    """Export a warm-start encoder like `ssl-fed export --format onnx --quantize int8` would.

    A warm start has no run folder; its card states ε = 0 for every site (no site data), which
    is what the export card carries. Returns the encoder's parameter count.
    """
    state, warm_card = load_warm_start(warm)
    enc = warm_card["encoder"]
    size, channels = int(warm_card["image_size"]), int(warm_card["channels"])
    encoder = ConvGNEncoder(channels, width=enc["width"], norm_groups=enc["norm_groups"])
    encoder.load_state_dict(state)
    out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, channels, size, size)
    written = write_encoder(FeatureEncoder(encoder).eval(), "onnx", out, example)
    unknown = ("delta", "accountant", "secure_aggregation", "aggregation", "linear_probe")
    card: dict[str, Any] = dict.fromkeys((*unknown, "knn_accuracy", "evaluated_round"))
    card |= {
        "run_id": f"warm start {warm}",
        "privacy_unit": warm_card["privacy"],
        "epsilon_max": warm_card["epsilon_per_site"],
        "epsilon_per_site": {},
        "rounds": 0,
        "sites": [],
        "data": {"image_size": size, "channels": channels},
        "initialisation": {k: warm_card[k] for k in ("kind", "family", "num_images", "epochs")},
        "config_sha256": "",
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    card["quantization"], _ = quantize_export(written[0], size, channels)
    write_card(card, out)
    return int(sum(p.numel() for p in encoder.parameters()))


def interleaved_timings(paths: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    """Median latency (batch 1, ms) and throughput (batch 256, img/s) per model and thread count.

    Repeats go round-robin over every (model, threads, batch) so that the shared machine's load
    swings hit all models alike; 3 warm-up runs each first.
    """
    cases = {}
    for name, path in paths.items():
        for threads in (1, 2):
            model = load_served(path, threads=threads)
            for batch in (1, 256):
                x = synthetic_images(batch, model.image_size, model.channels, seed=7)
                for _ in range(3):
                    model.run(x)
                cases[(name, threads, batch)] = (model, x, [])
    for _ in range(repeats):
        for (_, _, batch), (model, x, times) in cases.items():
            for _k in range(10 if batch == 1 else 1):
                begin = time.perf_counter()
                model.run(x)
                times.append(time.perf_counter() - begin)
    out: dict[str, dict[str, float]] = {name: {} for name in paths}
    for (name, threads, batch), (_, _, times) in cases.items():
        median = statistics.median(times)
        if batch == 1:
            out[name][f"latency_ms_{threads}t"] = 1000 * median
        else:
            out[name][f"throughput_{threads}t"] = 256 / median
    return out


def measure(paths: dict[str, Path], params: dict[str, int]) -> dict[str, dict[str, Any]]:
    """One row per model: parameters, file size, timings and the public probe."""
    timings = interleaved_timings(paths, repeats=30)
    rows = {}
    for name, path in paths.items():
        row: dict[str, Any] = {"params": params[name], "bytes": path.stat().st_size}
        row |= timings[name]
        row["probe"] = probe_public(load_served(path), draws=5)["accuracy"]
        print(name, json.dumps(row), flush=True)
        rows[name] = row
    return rows


def verdicts(rows: dict[str, dict[str, Any]]) -> list[str]:
    fp32 = rows["fp32"]
    lines = []
    for base, quant in (("fp32", "int8"), ("distilled", "distilled + int8")):
        b, q = rows[base], rows[quant]
        smaller = b["bytes"] / q["bytes"]
        speed = {t: q[f"throughput_{t}t"] / b[f"throughput_{t}t"] for t in (1, 2)}
        loss = {k: 100 * (b["probe"][k] - q["probe"][k]) for k in ("10", "all")}
        ok = smaller >= 3 and min(speed.values()) >= 1.5 and max(loss.values()) <= 1
        lines.append(
            f"- {quant} vs {base}: {smaller:.2f}x smaller (target >= 3x), throughput "
            f"{speed[1]:.2f}x / {speed[2]:.2f}x at 1 / 2 threads (target >= 1.5x), probe loss "
            f"{loss['10']:+.1f} / {loss['all']:+.1f} points at 10 / all (target <= 1): "
            f"{'met' if ok else 'missed'}"
        )
    d = rows["distilled"]
    fewer = fp32["params"] / d["params"]
    loss = {k: 100 * (fp32["probe"][k] - d["probe"][k]) for k in ("10", "all")}
    ok = fewer >= 4 and max(loss.values()) <= 2
    lines.append(
        f"- distilled vs fp32: {fewer:.2f}x fewer parameters (target >= 4x), probe loss "
        f"{loss['10']:+.1f} / {loss['all']:+.1f} points at 10 / all (target <= 2): "
        f"{'met' if ok else 'missed'}"
    )
    return lines


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| model | params | file KiB | latency b=1 ms (1t / 2t) | throughput b=256 img/s "
        "(1t / 2t) | probe k=10 / all % |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['params']:,} | {r['bytes'] / 1024:.0f} | "
            f"{r['latency_ms_1t']:.3f} / {r['latency_ms_2t']:.3f} | "
            f"{r['throughput_1t']:,.0f} / {r['throughput_2t']:,.0f} | "
            f"{100 * r['probe']['10']:.1f} / {100 * r['probe']['all']:.1f} |"
        )
    return lines


def prepare(args: argparse.Namespace, root: Path, opts: DistillOptions) -> int:
    """Export (fp32 + int8) and distil (+ int8) into ``root``; return the teacher's parameters.

    With ``--reuse`` and both model cards already in ``root``, only the parameters are read.
    """
    if args.reuse and (root / "student" / "model_card.json").is_file():
        return weights(args)
    if args.run:
        export_run(args.run, "onnx", root / "fp32", quantize="int8")
        teacher = sum(p.numel() for p in load_run(args.run)[2].parameters())
    else:
        teacher = export_warm_start(Path(args.warm_start), root / "fp32")
    distill(root / "fp32", root / "student", opts, quantize="int8", measure_probe=False)
    return teacher


def weights(args: argparse.Namespace) -> int:
    """The teacher's parameter count, from its run or warm start (not from the ONNX graph)."""
    if args.run:
        return sum(p.numel() for p in load_run(args.run)[2].parameters())
    state, _ = load_warm_start(args.warm_start)
    return int(sum(t.numel() for t in state.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a finished run folder (out=)")
    source.add_argument("--warm-start", help="a `pretrain-synthetic` folder, if no run is around")
    parser.add_argument("--width", type=int, default=12, help="student width (teacher: 32)")
    parser.add_argument("--epochs", type=int, default=30, help="distillation epochs")
    parser.add_argument("--images", type=int, default=4096, help="synthetic images per epoch")
    parser.add_argument("--out", help="keep exports here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse exports already in --out")
    parser.add_argument("--note", default="", help="where the run came from, for the record")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="ssl-fed-serving-"))
    load_before = os.getloadavg()
    start = time.time()
    opts = DistillOptions(width=args.width, images_per_epoch=args.images, epochs=args.epochs)
    teacher_params = prepare(args, root, opts)
    card = json.loads((root / "student" / "model_card.json").read_text())
    student_params = int(card["distillation"]["student"]["params"])
    paths = {
        "fp32": root / "fp32" / "encoder.onnx",
        "int8": root / "fp32" / "encoder.int8.onnx",
        "distilled": root / "student" / "encoder.onnx",
        "distilled + int8": root / "student" / "encoder.int8.onnx",
    }
    params = dict.fromkeys(["fp32", "int8"], teacher_params)
    rows = measure(paths, params | dict.fromkeys(["distilled", "distilled + int8"], student_params))
    load_after = os.getloadavg()
    lines = table(rows)
    checks = verdicts(rows)
    print("\n".join([*lines, "", *checks]))
    update_section(
        "serving",
        "\n".join(
            [
                "## Serving the encoder: int8 and distillation (`python benchmarks/serving.py`)",
                "",
                f"Machine: {machine()}; load average (1 min) {load_before[0]:.1f} before, "
                f"{load_after[0]:.1f} after (a 2-core machine shared with other jobs: absolute "
                f"times are noisy, ratios less so). {time.time() - start:.0f} s"
                + (
                    " (measurement only: exports and student reused from --out). "
                    if args.reuse
                    else ". "
                )
                + f"Encoder: {args.note or args.run or args.warm_start}. onnxruntime CPU, median "
                "of 300 runs (batch 1) / 30 runs (batch 256) after 3 warm-ups, interleaved "
                "over the models so load swings hit all alike; 1t / 2t = intra-op threads. "
                "int8: ONNX Runtime static quantization of the convolutions (QLinearConv, "
                "per-channel int8 weights, uint8 activations) calibrated on 512 synthetic stroke "
                "images. Distilled: "
                f"cnn_gn width {args.width} trained on synthetic strokes only "
                f"({opts.epochs} epochs x {opts.images_per_epoch} fresh images). Probe: "
                "logistic regression on frozen features, digits' public split (1257 / 540), "
                "k=10 averaged over 5 label draws. Targets: " + TARGETS + ".",
                "",
                *lines,
                "",
                *checks,
            ]
        ),
    )
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
