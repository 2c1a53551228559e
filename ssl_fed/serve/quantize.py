"""Post-training int8 quantization of the exported ONNX encoder, calibrated on synthetic images.

Method: ONNX Runtime static quantization (``quantize_static``) of the convolutions in QDQ form
(``QuantizeLinear``/``DequantizeLinear`` pairs that ONNX Runtime fuses into ``QLinearConv`` when it
loads the model), int8 weights per output channel and uint8 activations whose ranges come from
MinMax calibration (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018, arXiv 1712.05877; Krishnamoorthi, "Quantizing
deep convolutional networks for efficient inference", arXiv 1806.08342). Before that,
GroupNorm's per-channel affine step is rewritten as a depthwise 1x1 Conv
(:func:`ssl_fed.serve.graph.fold_norm_affine`, which the fp32 export also applies), so that it
is quantized with its ReLU fused in and only InstanceNormalization stays in float; the graph is
then shape-inferred and optimized (``quant_pre_process``), as ONNX Runtime recommends.

Why this form (ONNX Runtime profiles, 8x8 digits encoder, batch 256, 1 thread): in the plain
export the float ``Mul`` + ``Add`` of GroupNorm's affine step took about a third of fp32 time in
one profile, and quantizing only the 3x3 convolutions left them in float between a
``DequantizeLinear`` and a ``QuantizeLinear``: int8 ran at 0.8-1.2x fp32. Per-tensor weights,
quantizing GroupNorm's arithmetic and pooling too (``QLinearMul``/``QLinearAdd``/
``QLinearAveragePool``) and QOperator form were never clearly faster than this form on the
shared 2-core machine. What still bounds int8 is GroupNorm's normalization itself: ONNX Runtime
has no integer InstanceNormalization, so each block's output is dequantized for it (the
``DequantizeLinear`` share of int8 time in benchmarks/RESULTS.md, serving section, whose
throughput ratios are against the same rewritten fp32 graph).

Calibration images are generated (:mod:`ssl_fed.data.synthetic`: strokes for grayscale,
dead leaves for RGB), never a site's. The card section records the method, the calibration
data, the feature error on fresh synthetic images, and the probe change on public digits.

Notes
-----
Privacy: the int8 encoder is a function of the released encoder and of synthetic images only,
so it is post-processing and carries exactly the released encoder's (ε, δ) per site; no ledger
is charged and no site data path is opened.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ssl_fed.data.synthetic import generate_synthetic
from ssl_fed.export import EXPORT_EXTRA, ExportError
from ssl_fed.serve.graph import fold_norm_affine, strip_debug_info
from ssl_fed.serve.probe import probe_public
from ssl_fed.serve.runtime import Batch, ServedModel, load_served

CALIBRATION_IMAGES = 512
CALIBRATION_SEED = 0
CHECK_IMAGES = 256
METHOD = (
    "GroupNorm affine folded into depthwise 1x1 Conv, then ONNX Runtime static quantization of "
    "Conv (QDQ, fused to QLinearConv at load): int8 per-channel weights, uint8 activations, "
    "MinMax calibration"
)


def synthetic_family(channels: int) -> str:
    """Name the generator that fits the input: strokes (grayscale) or dead leaves (RGB)."""
    return "strokes" if channels == 1 else "dead_leaves"


def synthetic_images(n: int, image_size: int, channels: int, seed: int) -> Batch:
    """``n`` synthetic images ``[n, C, S, S]`` (float32, no site data)."""
    family = synthetic_family(channels)
    data = generate_synthetic(family, n, image_size=image_size, channels=channels, seed=seed)
    return np.asarray(data.images.numpy(), dtype=np.float32)


def quantize_onnx(fp32: Path, int8: Path, calibration: Batch) -> None:
    """Write the int8 copy of ``fp32`` to ``int8``, calibrated on ``calibration`` images."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as err:
        raise ExportError(f"--quantize int8 needs onnxruntime: {EXPORT_EXTRA}") from err

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches = iter(calibration[i : i + 64] for i in range(0, len(calibration), 64))

        def get_next(self) -> dict[str, Batch] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT warns per rank-1 weight that it cannot quantize per channel
    try:
        with tempfile.TemporaryDirectory(prefix="ssl-fed-int8-") as tmp:
            folded, pre = Path(tmp) / "folded.onnx", Path(tmp) / "pre.onnx"
            shutil.copyfile(fp32, folded)
            fold_norm_affine(folded)
            quant_pre_process(str(folded), str(pre))
            quantize_static(
                str(pre),
                str(int8),
                Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    finally:
        root.setLevel(level)
    strip_debug_info(int8)


def feature_error(reference: ServedModel, other: ServedModel, images: Batch) -> dict[str, float]:
    """Max absolute and relative L2 difference of two encoders' features on ``images``."""
    a, b = reference.run(images), other.run(images)
    rel = float(np.linalg.norm(a - b) / max(float(np.linalg.norm(a)), 1e-12))
    return {"max_abs": float(np.abs(a - b).max()), "relative_l2": rel}


def quantize_export(
    fp32: Path, image_size: int, channels: int, *, measure_probe: bool = True
) -> tuple[dict[str, Any], Path]:
    """Write ``encoder.int8.onnx`` beside ``fp32``; return the card section and its path.

    The section holds the method, the calibration data, the feature error on fresh synthetic
    images (another seed) and, with ``measure_probe``, the probe on public digits for both
    encoders and the change in points.
    """
    family = synthetic_family(channels)
    int8 = fp32.with_name("encoder.int8.onnx")
    calibration = synthetic_images(CALIBRATION_IMAGES, image_size, channels, CALIBRATION_SEED)
    quantize_onnx(fp32, int8, calibration)
    ref, quant = load_served(fp32), load_served(int8)
    check = synthetic_images(CHECK_IMAGES, image_size, channels, CALIBRATION_SEED + 1)
    section: dict[str, Any] = {
        "method": METHOD,
        "file": int8.name,
        "calibration_data": f"synthetic:{family}, {CALIBRATION_IMAGES} images, seed "
        f"{CALIBRATION_SEED} (ssl_fed.data.synthetic); no site data",
        "feature_error": feature_error(ref, quant, check)
        | {"measured_on": f"{CHECK_IMAGES} synthetic:{family} images, seed {CALIBRATION_SEED + 1}"},
        "size_bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
    }
    if measure_probe:
        before, after = probe_public(ref), probe_public(quant)
        section["probe"] = {
            "data": before["data"],
            "fp32": before["accuracy"],
            "int8": after["accuracy"],
            "change_points": {
                k: round(100 * (after["accuracy"][k] - v), 2) for k, v in before["accuracy"].items()
            },
        }
    return section, int8
