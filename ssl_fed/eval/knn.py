"""k-nearest-neighbour accuracy under cosine similarity: a probe with no fitted parameters."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import normalize

from ssl_fed.eval.linear_probe import check_features


def knn_accuracy(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    test_x: npt.ArrayLike,
    test_y: npt.ArrayLike,
    *,
    k: int,
) -> float:
    """Return the test accuracy in ``[0, 1]`` of a ``k``-NN vote under cosine distance.

    Contrastive encoders are trained to align *directions* (NT-Xent compares cosine
    similarities), so the feature norm carries no meaning and neighbours are found by angle.
    Rows are L2-normalized first; on unit vectors the Euclidean distance is
    ``sqrt(2 - 2 cos)``, a monotone function of the cosine distance, so the neighbours are the
    cosine neighbours. An all-zero row stays zero (``sklearn.preprocessing.normalize``). The vote
    is uniform; ties go to the smaller class label (scikit-learn's rule).

    Raises
    ------
    ValueError
        For invalid arrays, mismatched feature widths, ``k < 1`` or ``k`` above the training size.
    """
    xtr, ytr = check_features(train_x, train_y, "train")
    xte, yte = check_features(test_x, test_y, "test")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train has {xtr.shape[1]} features but test has {xte.shape[1]}")
    if not 1 <= k <= xtr.shape[0]:
        raise ValueError(f"k={k} is invalid: use 1 <= k <= {xtr.shape[0]} (training rows)")
    knn = KNeighborsClassifier(n_neighbors=k, metric="euclidean", algorithm="brute")
    knn.fit(normalize(xtr), ytr)
    return float(np.mean(knn.predict(normalize(xte)) == yte))
