"""Frozen-feature evaluation: linear-probe label efficiency, cosine kNN, calibration, reports."""

from ssl_fed.eval.calibration import expected_calibration_error, per_class_accuracy
from ssl_fed.eval.knn import knn_accuracy
from ssl_fed.eval.linear_probe import (
    ALL_LABELS,
    ProbeResult,
    fit_probe,
    label_key,
    probe_accuracy,
    probe_label_efficiency,
    sample_per_class,
)
from ssl_fed.eval.report import (
    EvalReport,
    evaluate_encoder,
    evaluate_features,
    evaluate_raw_pixels,
    extract_features,
)

__all__ = [
    "ALL_LABELS",
    "EvalReport",
    "ProbeResult",
    "evaluate_encoder",
    "evaluate_features",
    "evaluate_raw_pixels",
    "expected_calibration_error",
    "extract_features",
    "fit_probe",
    "knn_accuracy",
    "label_key",
    "per_class_accuracy",
    "probe_accuracy",
    "probe_label_efficiency",
    "sample_per_class",
]
