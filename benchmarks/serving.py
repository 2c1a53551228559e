"""Serving cost of released encoders: fp32 / int8 / distilled / distilled + int8 (issue 19).

For each ``--model`` (a finished run folder, or a `pretrain-synthetic` warm-start folder), exports
the encoder to ONNX with an int8 copy (`ssl-fed export --format onnx --quantize int8`) and distils
a narrower student on synthetic images (`ssl-fed distill ... --quantize int8`), then measures
every model of every encoder in one interleaved run with onnxruntime on this CPU: parameters,
file size, latency per image at batch 1 and throughput at batch 256 (1 and 2 intra-op threads,
median of repeats), and the linear probe on digits' public split (resized to the encoder's
input) at 10 labels per class and all labels. With ``--record``, writes the `serving` section of
RESULTS.md: machine and load average, where each encoder came from (read from its card), the
distillation recipe (read from the student's card), the per-op time profile of fp32 and int8,
the table, and the targets met or missed.

Usage: python benchmarks/serving.py --model RUN_OR_WARM_START --tag NAME [--model ... --tag ...]
           [--width 12] [--epochs 60] [--images 4096] [--out DIR [--reuse]] [--record]
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
from benchmarks.serving_report import TARGETS, VARIANTS, describe, op_profile, table, verdicts
from ssl_fed.export import FeatureEncoder, export_run, load_run, write_card, write_encoder
from ssl_fed.models import ConvGNEncoder
from ssl_fed.serve.distill import DistillOptions, distill
from ssl_fed.serve.probe import probe_public
from ssl_fed.serve.quantize import quantize_export, synthetic_images
from ssl_fed.serve.runtime import load_served
from ssl_fed.train.pretrain import load_warm_start


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
        "run_id": f"warm start {warm.name}",
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
    cases: dict[tuple[str, int, int], tuple[Any, Any, list[float]]] = {}
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


def is_run(model: Path) -> bool:
    """A run folder holds a checkpoint; anything else is read as a warm start."""
    return (model / "checkpoints" / "last.pt").is_file()


def prepare(model: Path, root: Path, opts: DistillOptions, reuse: bool) -> int:
    """Export (fp32 + int8) and distil (+ int8) into ``root``; return the teacher's parameters.

    With ``reuse`` and the student's card already in ``root``, only the parameters are read.
    """
    if is_run(model):
        teacher = sum(p.numel() for p in load_run(model)[2].parameters())
    else:
        teacher = int(sum(t.numel() for t in load_warm_start(model)[0].values()))
    if reuse and (root / "student" / "model_card.json").is_file():
        return teacher
    if is_run(model):
        export_run(model, "onnx", root / "fp32", quantize="int8")
    else:
        export_warm_start(model, root / "fp32")
    distill(root / "fp32", root / "student", opts, quantize="int8", measure_probe=False)
    return teacher


def recipe(student_card: dict[str, Any]) -> str:
    """The distillation recipe as its `ssl-fed distill` flags, read from the student's card."""
    d = student_card["distillation"]
    return f"width {d['student']['width']}, {d['training_data']} (final loss {d['final_loss']:.3f})"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="run or warm-start dir")
    parser.add_argument("--tag", action="append", help="row name per --model (default: dir name)")
    parser.add_argument("--width", type=int, default=12, help="student width (teacher: 32)")
    parser.add_argument(
        "--epochs",
        type=int,
        action="append",
        help="distillation epochs (default 60; once for all models or once per --model)",
    )
    parser.add_argument("--images", type=int, default=4096, help="synthetic images per epoch")
    parser.add_argument("--out", help="keep exports here, one folder per tag (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="reuse exports already in --out")
    parser.add_argument("--record", action="store_true", help="write the RESULTS.md section")
    args = parser.parse_args()
    args.tag = args.tag or [Path(m).name for m in args.model]
    args.epochs = args.epochs or [60]
    if len(args.epochs) == 1:
        args.epochs = args.epochs * len(args.model)
    if len(args.tag) != len(args.model) or len(args.epochs) != len(args.model):
        parser.error("give one --tag (and one --epochs, or a single one) per --model")
    return args


def main() -> None:
    args = parse()
    root = Path(args.out or tempfile.mkdtemp(prefix="ssl-fed-serving-"))
    load_before, start = os.getloadavg(), time.time()
    paths: dict[str, Path] = {}
    params: dict[str, int] = {}
    notes: list[str] = []
    for model, tag, epochs in zip(args.model, args.tag, args.epochs, strict=True):
        opts = DistillOptions(width=args.width, images_per_epoch=args.images, epochs=epochs)
        teacher = prepare(Path(model), root / tag, opts, args.reuse)
        fp32_card = json.loads((root / tag / "fp32" / "model_card.json").read_text())
        card = json.loads((root / tag / "student" / "model_card.json").read_text())
        student = int(card["distillation"]["student"]["params"])
        files = ["fp32/encoder.onnx", "fp32/encoder.int8.onnx"]
        files += ["student/encoder.onnx", "student/encoder.int8.onnx"]
        for variant, file in zip(VARIANTS, files, strict=True):
            paths[f"{tag} / {variant}"] = root / tag / file
            params[f"{tag} / {variant}"] = teacher if variant in VARIANTS[:2] else student
        profile = {v: op_profile(root / tag / f) for v, f in zip(VARIANTS[:2], files, strict=False)}
        notes.append(
            f"- **{tag}**: {describe(fp32_card)} ({model}). Student: {recipe(card)}. "
            "ORT kernel-time share by op (%) at batch 256, 1 thread: "
            f"fp32 `{json.dumps(profile['fp32'])}`, int8 `{json.dumps(profile['int8'])}`."
        )
    rows = measure(paths, params)
    load_after = os.getloadavg()
    lines, checks = table(rows), [c for tag in args.tag for c in verdicts(tag, rows)]
    print("\n".join([*notes, "", *lines, "", *checks]))
    if args.record:
        update_section(
            "serving", section(args, notes, lines, checks, load_before, load_after, start)
        )
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


def section(
    args: argparse.Namespace,
    notes: list[str],
    lines: list[str],
    checks: list[str],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    start: float,
) -> str:
    """The RESULTS.md section: setup, encoders, table and verdicts."""
    reused = " (measurement only: exports and students reused from --out)" if args.reuse else ""
    intro = (
        f"Machine: {machine()}; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (a 2-core machine shared with other jobs: absolute times are "
        f"noisy, ratios less so). {time.time() - start:.0f} s{reused}. onnxruntime CPU, median "
        "of 300 runs (batch 1) / 30 runs (batch 256) after 3 warm-ups, interleaved over every "
        "model of every encoder so load swings hit all alike; 1t / 2t = intra-op threads. "
        "fp32: the ONNX export, GroupNorm's affine step folded into a depthwise 1x1 Conv "
        "(ssl_fed.serve.graph). int8: ONNX Runtime static QDQ quantization of every Conv "
        "(per-channel int8 weights, uint8 activations) calibrated on 512 synthetic images. "
        "Distilled: cnn_gn student trained on fresh synthetic images only. Probe: logistic "
        "regression on frozen features, digits' public split (1257 / 540) resized to the "
        "encoder's input, k=10 averaged over 5 label draws. Targets: " + TARGETS + "."
    )
    return "\n".join(
        [
            "## Serving the encoder: int8 and distillation (`python benchmarks/serving.py`)",
            "",
            intro,
            "",
            *notes,
            "",
            *lines,
            "",
            *checks,
        ]
    )


if __name__ == "__main__":
    main()
