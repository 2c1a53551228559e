"""Linear-probe label efficiency: how well a frozen encoder's features serve few labels.

A linear probe is the standard frozen-feature test of a self-supervised encoder: if the classes
are linearly separable in feature space, a logistic regression on few labels finds them. We fit
it on *k* labelled examples per class, for several *k*, so that the result reads as a label
efficiency curve (the point of pretraining is that a good encoder needs few labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

ALL_LABELS = -1
"""The ``labels_per_class`` value that means "every labelled training example"."""


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a linear probe at one label budget.

    Attributes
    ----------
    mean : float
        Mean test accuracy in ``[0, 1]`` over the draws.
    std : float
        Population standard deviation (``ddof=0``) over the draws; ``0.0`` for one draw, so the
        value is always a finite, JSON-ready number.
    draws : int
        How many label draws were fitted (``1`` for "all": lbfgs is deterministic, so refitting
        the same rows would repeat the same number).
    """

    mean: float
    std: float
    draws: int


def label_key(k: int) -> str:
    """Return the report key of a label budget: ``str(k)``, or ``"all"`` for ``-1``."""
    return "all" if k == ALL_LABELS else str(k)


def check_features(
    x: npt.ArrayLike, y: npt.ArrayLike, split: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Validate one split's features ``[N, D]`` and integer labels ``[N]``; return them as arrays.

    Raises
    ------
    ValueError
        If the split is empty, the shapes disagree, the labels are not integers, or the features
        are not finite (a NaN would silently poison the scaler and the probe).
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y)
    if xa.ndim != 2:
        raise ValueError(f"{split} features must be 2-D [N, D], got shape {xa.shape}")
    if ya.ndim != 1:
        raise ValueError(f"{split} labels must be 1-D [N], got shape {ya.shape}")
    if xa.shape[0] == 0 or xa.shape[1] == 0:
        raise ValueError(f"{split} features are empty (shape {xa.shape}); nothing to evaluate")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"{split} has {xa.shape[0]} feature rows but {ya.shape[0]} labels; they must match"
        )
    if not np.issubdtype(ya.dtype, np.integer):
        raise ValueError(f"{split} labels must be integers, got dtype {ya.dtype}")
    if not np.all(np.isfinite(xa)):
        raise ValueError(f"{split} features contain NaN or inf")
    return xa, ya.astype(np.int64)


def sample_per_class(labels: npt.ArrayLike, k: int, seed: int) -> npt.NDArray[np.int64]:
    """Draw ``k`` row indices per class without replacement (all of a class smaller than ``k``).

    Parameters
    ----------
    labels : array-like of int, shape [N]
        The training labels.
    k : int
        Examples per class, ``>= 1``; ``-1`` returns every index.
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same rows.

    Returns
    -------
    numpy.ndarray of int64
        Sorted row indices.
    """
    y = np.asarray(labels)
    if k == ALL_LABELS:
        return np.arange(y.shape[0], dtype=np.int64)
    if k < 1:
        raise ValueError(f"k={k} is invalid: use a positive count, or -1 for all labels")
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(rows, size=min(k, rows.size), replace=False)
        for rows in (np.flatnonzero(y == c) for c in np.unique(y))
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def fit_probe(train_x: npt.ArrayLike, train_y: npt.ArrayLike) -> Pipeline:
    """Fit a standardized logistic-regression probe on all of the given rows.

    The scaler is fitted on these rows only (never on test rows), inside the pipeline, so the
    probe sees no test statistics. Standardizing matters: encoder features have arbitrary
    per-dimension scales, and an L2-penalized probe on raw scales would favour large dimensions.

    Raises
    ------
    ValueError
        For invalid arrays, or fewer than two classes (nothing to separate).
    """
    x, y = check_features(train_x, train_y, "train")
    if np.unique(y).size < 2:
        raise ValueError("the probe needs at least two classes in the training labels")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(x, y)
    return probe


def probe_accuracy(probe: Pipeline, test_x: npt.ArrayLike, test_y: npt.ArrayLike) -> float:
    """Return the fitted probe's accuracy in ``[0, 1]`` on a labelled test split."""
    x, y = check_features(test_x, test_y, "test")
    return float(np.mean(probe.predict(x) == y))


def probe_label_efficiency(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    test_x: npt.ArrayLike,
    test_y: npt.ArrayLike,
    *,
    labels_per_class: list[int],
    draws: int,
    seed: int,
    full_probe: Pipeline | None = None,
) -> dict[str, ProbeResult]:
    """Probe test accuracy at each label budget, keyed ``"1"``, ``"5"``, ..., ``"all"``.

    For each ``k`` and each draw ``d`` in ``range(draws)``, ``k`` examples per class are drawn
    with ``np.random.default_rng(seed + d)`` (so every ``k`` sees the same draw seeds), a probe
    is fitted (:func:`fit_probe`) and scored on the whole test split. ``k = -1`` ("all") is
    fitted once.

    Parameters
    ----------
    train_x, train_y, test_x, test_y : array-like
        Features ``[N, D]`` and integer labels ``[N]`` of each split.
    labels_per_class : list of int
        Label budgets; ``-1`` means all training labels.
    draws : int
        Label draws per budget, ``>= 1``.
    seed : int
        Base seed of the draws.
    full_probe : Pipeline, optional
        A probe already fitted on all of ``train_x`` (by :func:`fit_probe`); used for "all"
        instead of refitting, so a caller that also needs its probabilities fits it once.

    Returns
    -------
    dict of str to ProbeResult
    """
    xtr, ytr = check_features(train_x, train_y, "train")
    xte, yte = check_features(test_x, test_y, "test")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train has {xtr.shape[1]} features but test has {xte.shape[1]}")
    if not labels_per_class:
        raise ValueError("labels_per_class is empty: give at least one budget (-1 = all)")
    if draws < 1:
        raise ValueError(f"draws={draws} is invalid: use >= 1")
    results: dict[str, ProbeResult] = {}
    for k in labels_per_class:
        if k == ALL_LABELS:
            probe = full_probe if full_probe is not None else fit_probe(xtr, ytr)
            results[label_key(k)] = ProbeResult(probe_accuracy(probe, xte, yte), 0.0, 1)
            continue
        accs = []
        for d in range(draws):
            rows = sample_per_class(ytr, k, seed + d)
            accs.append(probe_accuracy(fit_probe(xtr[rows], ytr[rows]), xte, yte))
        results[label_key(k)] = ProbeResult(float(np.mean(accs)), float(np.std(accs)), draws)
    return results
