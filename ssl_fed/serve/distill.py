"""Distil the released encoder into a narrower student, on synthetic images only.

Feature distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
arXiv 1503.02531; Romero et al., "FitNets", arXiv 1412.6550): a ``cnn_gn`` student of width
``W`` is trained so that a linear map of its ``features()`` regresses the teacher's standardized
``features()`` (mean squared error). The linear map is a training device, dropped afterwards: the
student is served with its own features, which a downstream probe reads. Every epoch draws fresh
images from :mod:`ssl_fed.data.synthetic` (strokes for grayscale, dead leaves for RGB), so the
student never sees the same image twice and never sees a site's.

Notes
-----
Privacy: the student is a function of the released teacher and of synthetic images, i.e.
post-processing of the teacher, so it carries exactly the teacher's (ε, δ) per site, which are
copied from the teacher's card, never entered. No site data path is opened and no ledger is
charged. Distilling on site images would be a new use of private data and is not offered.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_fed.export import ExportError, FeatureEncoder, write_card, write_encoder
from ssl_fed.models import ConvGNEncoder
from ssl_fed.serve.probe import features_of, probe_public
from ssl_fed.serve.quantize import quantize_export, synthetic_family, synthetic_images
from ssl_fed.serve.runtime import ServedModel, load_served

TEACHER_ONLY = ("linear_probe", "knn_accuracy", "evaluated_round", "quantization")
"""Card fields that describe the teacher's weights, not the student's: set to None on the copy
(the student's own probe, on public data, is in its ``distillation`` section)."""


@dataclass(frozen=True)
class DistillOptions:
    """Student width and training schedule (defaults: about two minutes on 2 CPU cores at 8x8).

    60 epochs of 4096 fresh images is the schedule that kept a width-12 student within 2 probe
    points of the main job's width-32 encoder (30 epochs lost 3.4 points at 10 labels per class;
    benchmarks/RESULTS.md, serving section).
    """

    width: int
    images_per_epoch: int = 4096
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0


def _teacher_card(teacher: ServedModel) -> dict[str, Any]:
    if teacher.card is None or "epsilon_per_site" not in teacher.card:
        raise ExportError(
            f"--teacher {teacher.path}: no model_card.json with the teacher's ε beside it; give "
            "the folder written by `ssl-fed export` so the student can carry the teacher's ε"
        )
    return teacher.card


def build_student(channels: int, width: int) -> ConvGNEncoder:
    """Build a ``cnn_gn`` student of ``width`` with the most GroupNorm groups (<= 8) dividing it."""
    if width < 1:
        raise ExportError(
            f"--width {width}: use a positive channel count (the teacher's is larger)"
        )
    return ConvGNEncoder(channels, width=width, norm_groups=math.gcd(width, 8))


def train_student(teacher: ServedModel, opts: DistillOptions) -> tuple[ConvGNEncoder, float]:
    """Train the student on fresh synthetic images each epoch; return it and the last loss."""
    torch.manual_seed(opts.seed)
    student = build_student(teacher.channels, opts.width)
    size, channels = teacher.image_size, teacher.channels
    probe = synthetic_images(opts.images_per_epoch, size, channels, opts.seed + 10_000)
    target = features_of(teacher, probe)
    mean, std = target.mean(axis=0), target.std(axis=0) + 1e-6
    head = nn.Linear(student.feature_dim, target.shape[1])
    params = [*student.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=opts.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, opts.epochs)
    loss = torch.tensor(float("nan"))
    for epoch in range(opts.epochs):
        images = synthetic_images(opts.images_per_epoch, size, channels, opts.seed + epoch)
        goal = torch.from_numpy((features_of(teacher, images) - mean) / std)
        x = torch.from_numpy(images)
        order = torch.randperm(len(x))
        for start in range(0, len(x), opts.batch_size):
            rows = order[start : start + opts.batch_size]
            loss = nn.functional.mse_loss(head(student.features(x[rows])), goal[rows])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        schedule.step()
    return student.eval(), float(loss.detach())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def distill(
    teacher_path: Path,
    out: Path,
    opts: DistillOptions,
    *,
    fmt: str = "onnx",
    quantize: str | None = None,
    measure_probe: bool = True,
) -> list[Path]:
    """Distil the teacher at ``teacher_path`` into ``out`` (model + card); return the files.

    Raises
    ------
    ExportError
        No teacher card (its ε could not be carried), a bad width, or a missing extra; raised
        before anything is written.
    """
    teacher = load_served(teacher_path)
    teacher_card = _teacher_card(teacher)
    if quantize and fmt != "onnx":
        raise ExportError("--quantize int8 quantizes the ONNX student: add --format onnx")
    build_student(teacher.channels, opts.width)
    student, loss = train_student(teacher, opts)
    out.mkdir(parents=True, exist_ok=True)
    size, channels = teacher.image_size, teacher.channels
    example = torch.zeros(2, channels, size, size)
    written = write_encoder(FeatureEncoder(student).eval(), fmt, out, example)
    card = copy.deepcopy(teacher_card) | dict.fromkeys(TEACHER_ONLY)
    family = synthetic_family(channels)
    card["exported"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    card["distillation"] = {
        "teacher": str(teacher.path),
        "teacher_sha256": _sha256(teacher.path),
        "student": {"encoder": "cnn_gn", "width": opts.width, "params": _params(student)},
        "objective": "MSE from a linear map of the student's features to the teacher's "
        "standardized features (the map is dropped after training)",
        "training_data": f"synthetic:{family}, {opts.epochs} epochs x {opts.images_per_epoch} "
        f"fresh images, seeds {opts.seed}..{opts.seed + opts.epochs - 1}; no site data",
        "privacy": "post-processing of the teacher: ε and δ are copied from its card",
        "final_loss": loss,
    }
    if measure_probe:
        before, after = probe_public(teacher), probe_public(load_served(written[0]))
        card["distillation"]["probe"] = {
            "data": before["data"],
            "teacher": before["accuracy"],
            "student": after["accuracy"],
        }
    if quantize:
        card["quantization"], int8 = quantize_export(
            written[0], size, channels, measure_probe=measure_probe
        )
        written.append(int8)
    return [*written, *write_card(card, out)]


def _params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))
