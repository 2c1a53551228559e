"""Slice metrics agree with scikit-learn on fixed predictions; the worst slice and the diagram."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from ssl_fed.eval.calibration import expected_calibration_error
from ssl_fed.eval.slices import reliability_bins, reliability_diagram, slice_metrics

# Fixed predictions: class 3 is never predicted, class 4 is predicted but never true.
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 0])
PRED = np.array([0, 1, 0, 1, 1, 2, 0, 2, 4, 2, 1, 0])


def test_per_class_and_macro_agree_with_scikit_learn() -> None:
    # Prepare: scikit-learn over the union of classes, zero_division=0
    classes = np.union1d(LABELS, PRED)
    p, r, f, s = precision_recall_fscore_support(LABELS, PRED, labels=classes, zero_division=0)
    # Execute
    rep = slice_metrics(PRED, LABELS)
    # Assert
    np.testing.assert_allclose([rep.precision[c] for c in classes], p)
    np.testing.assert_allclose([rep.recall[c] for c in classes], r)
    np.testing.assert_allclose([rep.f1[c] for c in classes], f)
    assert [rep.support[c] for c in classes] == list(s)
    assert rep.macro["f1"] == pytest.approx(f1_score(LABELS, PRED, average="macro"))
    macro = precision_recall_fscore_support(LABELS, PRED, average="macro", zero_division=0)
    assert rep.macro["precision"] == pytest.approx(macro[0])
    assert rep.macro["recall"] == pytest.approx(macro[1])


def test_hand_computed_class_zero() -> None:
    # class 0: 4 true, predicted at rows 0, 2, 6, 11 -> tp 3 of 4 predicted, 3 of 4 true
    rep = slice_metrics(PRED, LABELS)
    assert (rep.precision[0], rep.recall[0], rep.f1[0]) == (0.75, 0.75, 0.75)
    assert rep.accuracy == pytest.approx(7 / 12)


def test_worst_slice_names_the_lowest_class_or_site() -> None:
    # class 3 and class 4 have F1 0; the lower id is named
    assert slice_metrics(PRED, LABELS).worst_slice == "class 3 (F1 0.000)"
    perfect = slice_metrics(LABELS, LABELS, site_accuracy={"2": 0.4, "7": 0.9})
    assert perfect.worst_slice == "site 2 (accuracy 0.400)"
    assert perfect.to_dict()["macro"]["f1"] == 1.0


def test_reliability_bins_sum_to_the_ece_and_draw_a_png(tmp_path) -> None:
    # Prepare
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 200)
    # Execute
    rows = reliability_bins(probs, labels)
    png = reliability_diagram(rows, tmp_path / "rel.png")
    # Assert: sum count/N * |acc - conf| is the ECE of calibration.py
    ece = sum(n / 200 * abs(acc - conf) for _, acc, conf, n in rows)
    assert ece == pytest.approx(expected_calibration_error(probs, labels))
    assert sum(r[3] for r in rows) == 200
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        slice_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="site accuracies"):
        slice_metrics([0], [0], site_accuracy={"1": 1.5})
