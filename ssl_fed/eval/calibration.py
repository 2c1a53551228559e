"""Calibration and per-class accuracy of a probabilistic classifier (here: the linear probe)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def expected_calibration_error(
    probs: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 15
) -> float:
    """Return the expected calibration error (ECE) over equal-width confidence bins.

    Following Guo et al. 2017, "On Calibration of Modern Neural Networks" (arXiv:1706.04599,
    eq. 3): the confidence of a prediction is its top probability, predictions are grouped into
    ``n_bins`` bins ``B_m = ((m-1)/M, m/M]`` by confidence (a confidence of exactly 0 joins the
    first bin), and

        ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|,

    the sample-weighted gap between accuracy and mean confidence. It is 0 when, within every
    bin, the classifier is right exactly as often as it claims. Empty bins contribute nothing.

    Parameters
    ----------
    probs : array-like, shape [N, K]
        Class probabilities; each row in ``[0, 1]`` and summing to 1 (within 1e-3).
    labels : array-like of int, shape [N]
        True classes as column indices of ``probs`` (``0 <= label < K``).
    n_bins : int
        Number of equal-width bins ``M``, ``>= 1``; 15 as in Guo et al.

    Returns
    -------
    float
        ECE in ``[0, 1]``.

    Raises
    ------
    ValueError
        For empty or mismatched inputs, probabilities outside ``[0, 1]`` or rows that do not
        sum to 1, labels outside ``[0, K)``, or ``n_bins < 1``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty [N, K] array, got shape {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if np.any((y < 0) | (y >= p.shape[1])):
        raise ValueError(f"labels must be column indices in [0, {p.shape[1]})")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probs must be finite and in [0, 1]")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of probs must sum to 1 (pass probabilities, not logits)")
    if n_bins < 1:
        raise ValueError(f"n_bins={n_bins} is invalid: use >= 1")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # right=True puts a confidence equal to an edge into the bin that edge closes: (lo, hi].
    bins = np.digitize(confidence, inner_edges, right=True)
    ece = 0.0
    for m in np.unique(bins):
        in_bin = bins == m
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def per_class_accuracy(pred: npt.ArrayLike, labels: npt.ArrayLike) -> dict[int, float]:
    """Return ``{class: accuracy}`` for each class that occurs in ``labels`` (the recall).

    A class that is only ever predicted, never true, has no accuracy and is left out; a true
    class that is never predicted correctly gets ``0.0``. Per-class numbers expose what a mean
    hides under federated label skew: a site that never saw a class can still pull the shared
    encoder away from it.

    Raises
    ------
    ValueError
        For empty, non-1-D or mismatched inputs.
    """
    p = np.asarray(pred)
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if p.shape != y.shape:
        raise ValueError(f"pred has shape {p.shape} but labels have {y.shape}; they must match")
    return {int(c): float(np.mean(p[y == c] == c)) for c in np.unique(y)}
