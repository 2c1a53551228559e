"""Slice-based evaluation of the linear probe: per class, per site, calibration, the worst slice.

One accuracy hides the slice a federation fails: under label skew a class that few sites hold
can collapse while the mean barely moves. This module reports, on fixed predictions, precision,
recall and F1 per class and their unweighted (macro) means (Sokolova & Lapalme 2009, "A
systematic analysis of performance measures for classification tasks", Table 3), names the worst
slice, and draws the reliability diagram of Guo et al. 2017 ("On Calibration of Modern Neural
Networks", arXiv 1706.04599, Fig. 1) whose gaps the ECE of :mod:`ssl_fed.eval.calibration` sums.

Per-site probe accuracy (a number each site computes on its own held-out labelled slice) enters
only as a given mapping ``{site: accuracy}``; nothing here reads a site's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SliceReport:
    """Per-class and macro precision/recall/F1 of fixed predictions, and the worst slice.

    Attributes
    ----------
    precision, recall, f1 : dict of int to float
        Per class, over the union of true and predicted classes. A class never predicted has
        precision 0; a class never true has recall 0 (scikit-learn's ``zero_division=0``).
    support : dict of int to int
        True examples per class.
    accuracy : float
        Fraction of correct predictions.
    site_accuracy : dict of str to float
        Probe accuracy each site reported for its own held-out slice (may be empty).
    """

    precision: dict[int, float]
    recall: dict[int, float]
    f1: dict[int, float]
    support: dict[int, int]
    accuracy: float
    site_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def macro(self) -> dict[str, float]:
        """Unweighted means over classes of precision, recall and F1 (F1 averaged per class)."""
        return {
            name: float(np.mean(list(values.values())))
            for name, values in (("precision", self.precision), ("recall", self.recall))
        } | {"f1": float(np.mean(list(self.f1.values())))}

    @property
    def worst_slice(self) -> str:
        """Name of the lowest slice (ties: the class).

        The class with the lowest F1, or the site with the lowest accuracy if that is smaller.
        """
        cls = min(self.f1, key=lambda c: (self.f1[c], c))
        name, value = f"class {cls} (F1 {self.f1[cls]:.3f})", self.f1[cls]
        if self.site_accuracy:
            site = min(self.site_accuracy, key=lambda s: (self.site_accuracy[s], s))
            if self.site_accuracy[site] < value:
                name = f"site {site} (accuracy {self.site_accuracy[site]:.3f})"
        return name

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready plain types (string keys)."""
        return {
            "precision": {str(c): v for c, v in self.precision.items()},
            "recall": {str(c): v for c, v in self.recall.items()},
            "f1": {str(c): v for c, v in self.f1.items()},
            "support": {str(c): v for c, v in self.support.items()},
            "macro": self.macro,
            "accuracy": self.accuracy,
            "site_accuracy": dict(self.site_accuracy),
            "worst_slice": self.worst_slice,
        }


def slice_metrics(
    pred: npt.ArrayLike, labels: npt.ArrayLike, site_accuracy: dict[str, float] | None = None
) -> SliceReport:
    """Compute :class:`SliceReport` from predicted and true integer classes.

    Raises
    ------
    ValueError
        For empty, non-1-D or mismatched inputs, or accuracies outside ``[0, 1]``.
    """
    p, y = np.asarray(pred), np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or p.shape != y.shape:
        raise ValueError(f"pred {p.shape} and labels {y.shape} must be equal non-empty 1-D arrays")
    sites = dict(site_accuracy or {})
    if any(not 0 <= a <= 1 for a in sites.values()):
        raise ValueError(f"site accuracies must lie in [0, 1], got {sites}")
    precision, recall, f1, support = {}, {}, {}, {}
    for c in np.union1d(p, y).tolist():
        tp = int(np.sum((p == c) & (y == c)))
        npred, ntrue = int(np.sum(p == c)), int(np.sum(y == c))
        precision[c] = tp / npred if npred else 0.0
        recall[c] = tp / ntrue if ntrue else 0.0
        total = precision[c] + recall[c]
        f1[c] = 2 * precision[c] * recall[c] / total if total else 0.0
        support[c] = ntrue
    return SliceReport(precision, recall, f1, support, float(np.mean(p == y)), sites)


def reliability_bins(
    probs: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 15
) -> list[tuple[float, float, float, int]]:
    """Return ``(bin upper edge, accuracy, mean confidence, count)`` per non-empty bin.

    Bins are those of :func:`ssl_fed.eval.calibration.expected_calibration_error`: equal-width
    ``((m-1)/M, m/M]`` over the top probability, so ``sum count/N * |acc - conf|`` is the ECE.
    """
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if p.ndim != 2 or p.shape[0] == 0 or y.shape != (p.shape[0],) or n_bins < 1:
        raise ValueError(f"probs {p.shape}, labels {y.shape}, n_bins={n_bins}: inconsistent")
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.digitize(confidence, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], right=True)
    return [
        (
            (m + 1) / n_bins,
            float(correct[bins == m].mean()),
            float(confidence[bins == m].mean()),
            int(np.sum(bins == m)),
        )
        for m in np.unique(bins).tolist()
    ]


def reliability_diagram(
    rows: list[tuple[float, float, float, int]], path: str | Path, n_bins: int = 15
) -> Path:
    """Draw accuracy against confidence per bin (Guo et al. 2017, Fig. 1) to a PNG at ``path``.

    ``rows`` are :func:`reliability_bins` (or the ``reliability`` list of a metrics.json).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 1.0 / n_bins
    fig, ax = plt.subplots(figsize=(4, 4))
    left = [r[0] - width for r in rows]
    ax.bar(left, [r[1] for r in rows], width, align="edge", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.scatter([r[0] - width / 2 for r in rows], [r[2] for r in rows], c="r", s=10, label="conf.")
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=7)
    out = Path(path)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def slice_scalars(report: dict[str, Any]) -> dict[str, float]:
    """TensorBoard scalars from an evaluation report dict (``EvalReport.to_dict()``).

    Tags: ``macro_precision``, ``macro_recall``, ``macro_f1``, ``ece`` and ``f1/class_<c>``;
    empty for a report without slices. The server's tracker logs them beside the probe.
    """
    slices = report.get("slices")
    if not isinstance(slices, dict):
        return {}
    out = {f"macro_{k}": float(v) for k, v in slices["macro"].items()}
    out |= {f"f1/class_{c}": float(v) for c, v in slices["f1"].items()}
    if "ece" in report:
        out["ece"] = float(report["ece"])
    return out
