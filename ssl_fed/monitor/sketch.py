"""A site's reference sketch in the global encoder's feature space, and the drift statistic.

The sketch is the kernel mean embedding of the site's reference images under random Fourier
features (Rahimi & Recht 2007, "Random Features for Large-Scale Kernel Machines"): features are
L2-normalized, mapped to ``phi(x) = [cos(Wx), sin(Wx)] / sqrt(D)`` with ``W`` drawn from a public
seed (``W ~ N(0, 1/h^2)``, a Gaussian kernel of bandwidth ``h``), and averaged. The drift
statistic is the distance between the reference mean and a fresh window's mean,

    s = || mean_ref phi - mean_fresh phi ||_2,

the (biased) maximum mean discrepancy of Gretton et al. 2012, "A Kernel Two-Sample Test"
(JMLR 13, eq. 5), under the approximate kernel. The site keeps a ``2D``-vector and two counts,
not the reference images or their features.

Two thresholds:

* ``local_threshold``: the ``1 - alpha`` quantile of a null distribution bootstrapped from the
  reference itself (random splits, rescaled to the window sizes); tight, data-dependent, used when
  nothing leaves the site.
* :func:`public_threshold`: McDiarmid's bound (Gretton et al. 2012, Thm 7 argument): since
  ``||phi|| = 1``, replacing one sample moves ``s`` by at most ``2/n`` (fresh) or ``2/m``
  (reference), and ``E s <= sqrt(1/n + 1/m)``, so under no drift
  ``P(s >= sqrt(1/n + 1/m) (1 + sqrt(2 ln(1/alpha)))) <= alpha``. It depends only on public
  sizes, which a DP release needs (:mod:`ssl_fed.monitor.release`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureMap:
    """Public random Fourier features of L2-normalized encoder features (no private input).

    Attributes
    ----------
    in_dim : int
        Encoder feature dimension.
    num_features : int
        ``D``: pairs of cosine/sine features; the sketch has ``2D`` numbers.
    bandwidth : float
        Gaussian kernel bandwidth ``h`` on the unit sphere (distances lie in ``[0, 2]``).
    seed : int
        Public seed of ``W``; every site and the server can redraw the same map.
    """

    in_dim: int
    num_features: int = 256
    bandwidth: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.in_dim < 1 or self.num_features < 1:
            raise ValueError(f"in_dim={self.in_dim}, num_features={self.num_features}: use >= 1")
        if not (math.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise ValueError(f"bandwidth={self.bandwidth} is invalid: use a finite number > 0")

    def weights(self) -> Array:
        """``W`` of shape ``[in_dim, D]``, a pure function of the public fields."""
        rng = np.random.default_rng(self.seed)
        return rng.normal(0.0, 1.0 / self.bandwidth, size=(self.in_dim, self.num_features))

    def transform(self, features: npt.ArrayLike) -> Array:
        """Map ``[N, in_dim]`` features to ``[N, 2D]`` unit-norm random features."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != self.in_dim:
            raise ValueError(f"features must be a non-empty [N, {self.in_dim}] array: {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or inf")
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
        z = (x.astype(np.float32) @ self.weights().astype(np.float32)).astype(np.float64)
        return np.concatenate([np.cos(z), np.sin(z)], axis=1) / math.sqrt(self.num_features)


def mean_embedding(fmap: FeatureMap, features: npt.ArrayLike) -> Array:
    """Mean of the random features of ``features`` (a point inside the unit ball)."""
    out: Array = fmap.transform(features).mean(axis=0)
    return out


def public_threshold(n: int, m: int, alpha: float) -> float:
    """Return the distribution-free level-``alpha`` threshold of ``s`` (windows ``n``, ``m``)."""
    if n < 1 or m < 1 or not 0 < alpha < 1:
        raise ValueError(f"n={n}, m={m}, alpha={alpha}: use n, m >= 1 and 0 < alpha < 1")
    return math.sqrt(1 / n + 1 / m) * (1 + math.sqrt(2 * math.log(1 / alpha)))


def sensitivity(n: int, m: int) -> float:
    """Most one image can move ``s``: ``2/n + 2/m`` (it may sit in both windows; ``||phi||=1``)."""
    return 2 / n + 2 / m


@dataclass(frozen=True)
class ReferenceSketch:
    """What a site keeps about its reference data: a mean embedding, sizes and a threshold.

    Attributes
    ----------
    fmap : FeatureMap
        The public feature map the sketch was built with.
    mean : numpy.ndarray
        Mean random feature of the ``m`` reference images, shape ``[2D]``.
    m : int
        Reference size.
    window : int
        Fresh-window size ``n`` the thresholds are calibrated for.
    alpha : float
        Test level.
    local_threshold : float
        Bootstrapped ``1 - alpha`` null quantile of ``s`` (stays at the site).
    """

    fmap: FeatureMap
    mean: Array
    m: int
    window: int
    alpha: float
    local_threshold: float

    @property
    def public_threshold(self) -> float:
        """McDiarmid threshold of :func:`public_threshold` for these public sizes."""
        return public_threshold(self.window, self.m, self.alpha)

    def statistic(self, fresh: npt.ArrayLike) -> float:
        """``s`` between the reference and a fresh window of exactly ``window`` features."""
        x = np.asarray(fresh)
        if x.ndim != 2 or x.shape[0] != self.window:
            raise ValueError(f"fresh window must hold {self.window} feature rows, got {x.shape}")
        return float(np.linalg.norm(self.mean - mean_embedding(self.fmap, x)))


def build_sketch(
    fmap: FeatureMap,
    reference: npt.ArrayLike,
    *,
    window: int,
    alpha: float = 0.01,
    draws: int = 200,
    seed: int = 0,
) -> ReferenceSketch:
    """Build a site's sketch from its reference features and calibrate the local threshold.

    Calibration: ``draws`` times, a random ``a = min(window, m // 2)`` reference rows are held
    out and ``s`` between them and the other ``b = m - a`` rows is computed. Under no drift
    ``E s^2 = v (1/a + 1/b)`` with ``v = 1 - ||E phi||^2`` (Gretton et al. 2012, eq. 3), so each
    draw is rescaled by ``sqrt((1/n + 1/m) / (1/a + 1/b))`` to the deployed sizes before the
    ``1 - alpha`` quantile is taken.

    Raises
    ------
    ValueError
        For fewer than 4 reference rows, ``window < 1``, ``alpha`` outside ``(0, 1)`` or
        ``draws < 1``.
    """
    phi = fmap.transform(reference)
    m = phi.shape[0]
    if m < 4 or window < 1 or draws < 1 or not 0 < alpha < 1:
        raise ValueError(
            f"reference of {m} rows, window={window}, draws={draws}, alpha={alpha}: use >= 4 "
            "reference rows, window >= 1, draws >= 1 and 0 < alpha < 1"
        )
    rng = np.random.default_rng(seed)
    a = min(window, m // 2)
    scale = math.sqrt((1 / window + 1 / m) / (1 / a + 1 / (m - a)))
    null = np.empty(draws)
    for i in range(draws):
        held = np.zeros(m, dtype=bool)
        held[rng.choice(m, size=a, replace=False)] = True
        null[i] = np.linalg.norm(phi[held].mean(axis=0) - phi[~held].mean(axis=0)) * scale
    threshold = float(np.quantile(null, 1 - alpha))
    return ReferenceSketch(fmap, phi.mean(axis=0), m, window, alpha, threshold)
