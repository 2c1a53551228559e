"""Frozen-feature evaluation: hand-computed metrics, probe behaviour, and the digits report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_blobs

from ssl_fed.config import EvalConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.eval import (
    evaluate_encoder,
    evaluate_raw_pixels,
    expected_calibration_error,
    extract_features,
    fit_probe,
    knn_accuracy,
    per_class_accuracy,
    probe_label_efficiency,
    sample_per_class,
)

# ---------------------------------------------------------------- calibration


def test_ece_hand_computed_four_predictions() -> None:
    # Prepare: 5 bins of width 0.2; confidences 0.9 (right), 0.75 (wrong), 0.65 (right), 0.55
    # (right). Bin (0.8,1]: acc 1, conf 0.9 -> 1/4*0.1 = 0.025. Bin (0.6,0.8]: acc 1/2,
    # conf 0.7 -> 2/4*0.2 = 0.1. Bin (0.4,0.6]: acc 1, conf 0.55 -> 1/4*0.45 = 0.1125.
    probs = np.array([[0.9, 0.1], [0.75, 0.25], [0.35, 0.65], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    # Execute
    ece = expected_calibration_error(probs, labels, n_bins=5)
    # Assert
    assert ece == pytest.approx(0.2375, abs=1e-12)


def test_ece_zero_for_confident_correct_and_one_for_confident_wrong() -> None:
    # Prepare: one-hot probabilities on 3 classes
    labels = np.array([0, 1, 2, 1])
    one_hot = np.eye(3)[labels]
    # Execute
    right = expected_calibration_error(one_hot, labels)
    wrong = expected_calibration_error(one_hot, (labels + 1) % 3)
    # Assert: confidence 1 with accuracy 1 -> 0; confidence 1 with accuracy 0 -> 1
    assert right == 0.0
    assert wrong == 1.0


def test_ece_edge_confidence_goes_to_the_bin_it_closes() -> None:
    # Prepare: confidence exactly 0.5 with 2 bins belongs to (0, 0.5]; it is right, so gap 0.5
    probs = np.array([[0.5, 0.5]])
    # Execute
    ece = expected_calibration_error(probs, np.array([0]), n_bins=2)
    # Assert
    assert ece == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("probs", "labels"),
    [
        (np.zeros((0, 2)), np.zeros(0, dtype=int)),  # empty
        (np.eye(2), np.array([0])),  # mismatched lengths
        (np.eye(2), np.array([0, 2])),  # label outside [0, K)
        (np.array([[2.0, -1.0]]), np.array([0])),  # not probabilities
        (np.array([[0.3, 0.3]]), np.array([0])),  # rows do not sum to 1
        (np.eye(2), np.array([0.0, 1.0])),  # float labels
    ],
)
def test_ece_rejects_bad_input(probs: np.ndarray, labels: np.ndarray) -> None:
    # Prepare / Execute / Assert
    with pytest.raises(ValueError):
        expected_calibration_error(probs, labels)


def test_per_class_accuracy_hand_case() -> None:
    # Prepare: class 0 1/1 right, class 1 2/3 right, class 2 1/1 right; class 3 only predicted
    pred = np.array([0, 0, 1, 1, 2, 3])
    labels = np.array([0, 1, 1, 1, 2, 2])
    # Execute
    acc = per_class_accuracy(pred, labels)
    # Assert
    assert acc == {0: 1.0, 1: pytest.approx(2 / 3), 2: 0.5}


def test_per_class_accuracy_rejects_mismatch() -> None:
    # Prepare / Execute / Assert
    with pytest.raises(ValueError, match="must match"):
        per_class_accuracy(np.array([0, 1]), np.array([0]))


# ---------------------------------------------------------------- kNN


def test_knn_separable_directions_and_scale_invariance() -> None:
    # Prepare: class 0 points along +x, class 1 along +y, with small angular noise
    rng = np.random.default_rng(0)
    radius = rng.uniform(0.5, 5.0, size=(80, 1))
    angle = np.concatenate([rng.normal(0.0, 0.1, 40), rng.normal(np.pi / 2, 0.1, 40)])
    x = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    y = np.repeat([0, 1], 40)
    train, test = np.arange(0, 80, 2), np.arange(1, 80, 2)
    # Execute: scaling test points changes Euclidean but not cosine neighbours
    acc = knn_accuracy(x[train], y[train], x[test], y[test], k=5)
    acc_scaled = knn_accuracy(x[train], y[train], 100.0 * x[test], y[test], k=5)
    # Assert
    assert acc == 1.0
    assert acc_scaled == 1.0


def test_knn_rejects_k_above_training_size() -> None:
    # Prepare
    x, y = np.eye(3), np.array([0, 1, 1])
    # Execute / Assert
    with pytest.raises(ValueError, match="k=4"):
        knn_accuracy(x, y, x, y, k=4)


# ---------------------------------------------------------------- linear probe


def test_sample_per_class_exact_counts_and_deterministic() -> None:
    # Prepare: 3 classes of sizes 10, 10 and 3
    labels = np.array([0] * 10 + [1] * 10 + [2] * 3)
    # Execute
    a, b = sample_per_class(labels, 5, seed=7), sample_per_class(labels, 5, seed=7)
    c = sample_per_class(labels, 5, seed=8)
    # Assert: exactly 5 per class (all 3 of the small class), same rows for the same seed
    assert np.bincount(labels[a]).tolist() == [5, 5, 3]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == a.size


def test_probe_on_separable_blobs() -> None:
    # Prepare: 3 well-separated Gaussian blobs in 10-D
    x, y = make_blobs(n_samples=900, centers=3, n_features=10, cluster_std=1.0, random_state=0)
    # Execute
    res = probe_label_efficiency(
        x[:600], y[:600], x[600:], y[600:], labels_per_class=[5, -1], draws=3, seed=0
    )
    # Assert
    assert set(res) == {"5", "all"}
    assert res["5"].mean >= 0.9 and res["5"].draws == 3
    assert res["all"].mean >= 0.9 and res["all"].draws == 1 and res["all"].std == 0.0


def test_probe_on_random_labels_is_near_chance() -> None:
    # Prepare: features carry no information about two random classes
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2400, 8)), rng.integers(0, 2, size=2400)
    # Execute
    res = probe_label_efficiency(
        x[:400], y[:400], x[400:], y[400:], labels_per_class=[10, -1], draws=3, seed=0
    )
    # Assert: chance is 0.5
    assert abs(res["all"].mean - 0.5) < 0.06
    assert abs(res["10"].mean - 0.5) < 0.1


def test_probe_is_deterministic_by_seed() -> None:
    # Prepare
    x, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=4.0, random_state=1)
    kwargs = {"labels_per_class": [1], "draws": 4}
    # Execute
    a = probe_label_efficiency(x[:200], y[:200], x[200:], y[200:], seed=3, **kwargs)
    b = probe_label_efficiency(x[:200], y[:200], x[200:], y[200:], seed=3, **kwargs)
    # Assert
    assert a == b


def test_probe_rejects_mismatched_lengths_and_empty() -> None:
    # Prepare
    x, y = np.eye(4), np.array([0, 1, 0, 1])
    # Execute / Assert
    with pytest.raises(ValueError, match="must match"):
        probe_label_efficiency(x, y[:3], x, y, labels_per_class=[-1], draws=1, seed=0)
    with pytest.raises(ValueError, match="empty"):
        probe_label_efficiency(x[:0], y[:0], x, y, labels_per_class=[-1], draws=1, seed=0)


# ---------------------------------------------------------------- report


class _Flatten(torch.nn.Module):
    """A stand-in encoder: features are the flattened pixels; records the mode it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Linear(1, 1)  # a parameter, so the device lookup has one
        self.child = torch.nn.Dropout(0.5)
        self.seen: list[tuple[bool, bool, bool]] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, self.child.training, torch.is_grad_enabled()))
        return x.flatten(1)


def _digits() -> tuple[ImageDataset, ImageDataset]:
    data = load_digits()
    images = torch.tensor(data.images / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    labels = torch.tensor(data.target, dtype=torch.int64)
    full = ImageDataset(images, labels, "digits")
    return full.subset(torch.arange(1200)), full.subset(torch.arange(1200, len(full)))


def _reference_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Guo et al. (2017) ECE, one bin (lo, hi] at a time: sum of |B|/n * |acc(B) - conf(B)|."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        rows = [i for i, c in enumerate(confidence) if (lo < c <= hi) or (b == 0 and c == 0)]
        if rows:
            acc = float(np.mean([predicted[i] == labels[i] for i in rows]))
            conf = float(np.mean([confidence[i] for i in rows]))
            total += len(rows) / len(labels) * abs(acc - conf)
    return total


@pytest.mark.slow
def test_evaluate_encoder_on_digits_restores_mode() -> None:
    # Prepare: a mixed-mode module (parent training, child eval) as a caller might leave it
    train, test = _digits()
    encoder = _Flatten()
    encoder.train()
    encoder.child.eval()
    cfg = EvalConfig(labels_per_class=[5, -1], draws=2, knn_k=5, seed=0)
    # Execute
    report = evaluate_encoder(encoder, train, test, cfg)
    # Assert: raw-pixel-like probe is strong; features ran in eval mode without gradients;
    # each submodule's mode is restored; the dict is JSON-ready
    assert report.linear_probe["all"].mean > 0.9
    assert report.knn_accuracy > 0.9
    assert train.labels is not None and test.labels is not None
    probe = fit_probe(train.images.flatten(1).numpy(), train.labels.numpy())
    probs = probe.predict_proba(test.images.flatten(1).numpy())
    assert report.ece == pytest.approx(_reference_ece(probs, test.labels.numpy()), abs=1e-6)
    assert report.ece > 0
    assert sorted(report.per_class_accuracy) == list(range(10))
    assert all(s == (False, False, False) for s in encoder.seen)
    assert encoder.training and not encoder.child.training
    out = json.loads(json.dumps(report.to_dict()))
    assert set(out) == {
        "linear_probe",
        "linear_probe_std",
        "knn_accuracy",
        "ece",
        "per_class_accuracy",
        "slices",
        "reliability",
    }
    assert out["slices"]["recall"] == out["per_class_accuracy"]
    assert sum(row[3] for row in out["reliability"]) == len(test)
    assert set(out["linear_probe"]) == {"5", "all"}
    assert out["per_class_accuracy"]["0"] == report.per_class_accuracy[0]


def test_extract_features_batches_match_one_pass() -> None:
    # Prepare
    images = torch.rand(10, 1, 4, 4)
    encoder = _Flatten()
    # Execute
    batched = extract_features(encoder, images, batch_size=3)
    # Assert: 4 batches, same values as one flatten
    assert len(encoder.seen) == 4
    np.testing.assert_array_equal(batched, images.flatten(1).numpy())


def test_extract_features_requires_features_method() -> None:
    # Prepare / Execute / Assert
    with pytest.raises(TypeError, match="features"):
        extract_features(torch.nn.Linear(2, 2), torch.rand(2, 1, 2, 2))


def test_evaluation_without_labels_raises_clearly() -> None:
    # Prepare
    train, test = _digits()
    unlabelled = ImageDataset(test.images, None, "folder:/imgs")
    # Execute / Assert
    with pytest.raises(ValueError, match=r"no labels.*test_path"):
        evaluate_raw_pixels(train, unlabelled, EvalConfig())


@pytest.mark.slow
def test_unseen_test_class_counts_as_a_mistake() -> None:
    # Prepare: train on digits 0..8 only; test still contains 9s
    train, test = _digits()
    assert train.labels is not None
    train = train.subset(torch.nonzero(train.labels != 9).flatten())
    cfg = EvalConfig(labels_per_class=[-1], draws=1, knn_k=3, seed=0)
    # Execute
    report = evaluate_raw_pixels(train, test, cfg)
    # Assert: the unseen class has accuracy 0 and the report is still computed
    assert report.per_class_accuracy[9] == 0.0
    assert 0.0 < report.ece <= 1.0
