"""Evaluate a frozen encoder (or raw pixels) on labelled train/test splits: one report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ssl_fed.config import EvalConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.eval.calibration import expected_calibration_error, per_class_accuracy
from ssl_fed.eval.knn import knn_accuracy
from ssl_fed.eval.linear_probe import (
    ProbeResult,
    check_features,
    fit_probe,
    probe_label_efficiency,
)
from ssl_fed.eval.slices import SliceReport, reliability_bins, slice_metrics


@dataclass(frozen=True)
class EvalReport:
    """Frozen-feature evaluation of one encoder on one labelled test split.

    Attributes
    ----------
    linear_probe : dict of str to ProbeResult
        Probe accuracy per label budget (``"1"``, ``"5"``, ``"10"``, ``"all"``).
    knn_accuracy : float
        Cosine ``k``-NN test accuracy with all training labels.
    ece : float
        Expected calibration error (15 bins) of the all-labels probe on the test split.
    per_class_accuracy : dict of int to float
        Test accuracy of the all-labels probe within each true class.
    slices : SliceReport or None
        Per-class precision/recall/F1, macro means and the worst slice of the all-labels probe.
    reliability : list of (edge, accuracy, confidence, count)
        The ECE's bins (:func:`ssl_fed.eval.slices.reliability_bins`), for the diagram.
    """

    linear_probe: dict[str, ProbeResult]
    knn_accuracy: float
    ece: float
    per_class_accuracy: dict[int, float]
    slices: SliceReport | None = None
    reliability: list[tuple[float, float, float, int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready plain types (string keys, Python floats)."""
        out: dict[str, Any] = {
            "linear_probe": {k: float(r.mean) for k, r in self.linear_probe.items()},
            "linear_probe_std": {k: float(r.std) for k, r in self.linear_probe.items()},
            "knn_accuracy": float(self.knn_accuracy),
            "ece": float(self.ece),
            "per_class_accuracy": {str(c): float(a) for c, a in self.per_class_accuracy.items()},
        }
        if self.slices is not None:
            out["slices"] = self.slices.to_dict()
        if self.reliability is not None:
            out["reliability"] = [list(b) for b in self.reliability]
        return out


def extract_features(
    encoder: torch.nn.Module, images: torch.Tensor, batch_size: int = 512
) -> npt.NDArray[np.float32]:
    """Return ``encoder.features(images)`` as a float32 array ``[N, D]``, computed in batches.

    The encoder runs in eval mode (frozen statistics, no dropout) under ``torch.no_grad()`` on
    the device of its first parameter (CPU if it has none). Each submodule's previous
    ``training`` flag is restored afterwards, even on error, so evaluating mid-training does not
    silently switch a caller's model into eval mode.

    Raises
    ------
    TypeError
        If the encoder has no callable ``features`` method or it returns a non-tensor.
    ValueError
        For images that are not ``[N, C, H, W]``, an empty batch, ``batch_size < 1``, or features
        that are not ``[B, D]``.
    """
    features = getattr(encoder, "features", None)
    if not callable(features):
        raise TypeError(f"{type(encoder).__name__} has no features() method ([B,C,H,W] -> [B,D])")
    if images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape)
        raise ValueError(f"images must be a non-empty [N, C, H, W] tensor, got {shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid: use >= 1")
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = {module: module.training for module in encoder.modules()}
    chunks: list[npt.NDArray[np.float32]] = []
    try:
        encoder.eval()
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start : start + batch_size].to(device)
                out = features(batch)
                if not isinstance(out, torch.Tensor):
                    raise TypeError(f"features() returned {type(out).__name__}, not a tensor")
                if out.ndim != 2 or out.shape[0] != batch.shape[0]:
                    raise ValueError(
                        f"features() must map [B,C,H,W] to [B,D]; got {tuple(out.shape)} "
                        f"for a batch of {batch.shape[0]}"
                    )
                chunks.append(out.detach().float().cpu().numpy())
    finally:
        for module, mode in modes.items():
            module.training = mode
    return np.concatenate(chunks, axis=0)


def _labels_of(split: ImageDataset, name: str) -> npt.NDArray[np.int64]:
    if split.labels is None:
        raise ValueError(
            f"the {name} split ({split.source}) has no labels: frozen-feature evaluation fits a "
            "probe on labelled training features and scores it on labelled test images. Set "
            "data.test_path to a labelled test set, or use a labelled folder (one subfolder per "
            "class) or a dataset with labels (digits, npz with a 'labels' array)."
        )
    return split.labels.cpu().numpy().astype(np.int64)


def evaluate_features(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    test_x: npt.ArrayLike,
    test_y: npt.ArrayLike,
    cfg: EvalConfig,
) -> EvalReport:
    """Build the full report from precomputed features (shared by encoder and pixel baselines).

    The all-labels probe is fitted once and reused for the "all" budget, the ECE and the
    per-class accuracies. For the ECE the probe's probability columns (its training classes)
    are widened to the union of train and test classes with zero columns, so a test class the
    probe never saw counts as a confident mistake instead of being dropped.
    """
    xtr, ytr = check_features(train_x, train_y, "train")
    xte, yte = check_features(test_x, test_y, "test")
    full = fit_probe(xtr, ytr)
    probe = probe_label_efficiency(
        xtr,
        ytr,
        xte,
        yte,
        labels_per_class=list(cfg.labels_per_class),
        draws=cfg.draws,
        seed=cfg.seed,
        full_probe=full,
    )
    classes = np.union1d(full.classes_, yte)
    probs = np.zeros((xte.shape[0], classes.size))
    probs[:, np.searchsorted(classes, full.classes_)] = full.predict_proba(xte)
    pred, columns = full.predict(xte), np.searchsorted(classes, yte)
    return EvalReport(
        linear_probe=probe,
        knn_accuracy=knn_accuracy(xtr, ytr, xte, yte, k=cfg.knn_k),
        ece=expected_calibration_error(probs, columns),
        per_class_accuracy=per_class_accuracy(pred, yte),
        slices=slice_metrics(pred, yte),
        reliability=reliability_bins(probs, columns),
    )


def evaluate_encoder(
    encoder: torch.nn.Module, train: ImageDataset, test: ImageDataset, cfg: EvalConfig
) -> EvalReport:
    """Evaluate a frozen encoder: probe, kNN, ECE and per-class accuracy on its features.

    Raises
    ------
    ValueError
        If either split has no labels, or for any invalid input (see :func:`extract_features`).
    """
    ytr, yte = _labels_of(train, "train"), _labels_of(test, "test")
    xtr = extract_features(encoder, train.images)
    xte = extract_features(encoder, test.images)
    return evaluate_features(xtr, ytr, xte, yte, cfg)


def evaluate_raw_pixels(train: ImageDataset, test: ImageDataset, cfg: EvalConfig) -> EvalReport:
    """Evaluate flattened raw pixels as features: the baseline a pretrained encoder must beat.

    Raises
    ------
    ValueError
        If either split has no labels.
    """
    ytr, yte = _labels_of(train, "train"), _labels_of(test, "test")
    xtr = train.images.reshape(len(train), -1).cpu().numpy()
    xte = test.images.reshape(len(test), -1).cpu().numpy()
    return evaluate_features(xtr, ytr, xte, yte, cfg)
