"""AboveThreshold is ε-DP: exact output probabilities on neighbouring statistic streams.

Independent of the implementation's analysis: the probability of each output sequence is
integrated numerically over the threshold noise (Dwork & Roth 2014, proof of Thm 3.23), for
statistic streams that differ by at most Δ per round, and the largest log-ratio is compared
with ε. A Monte Carlo run of :meth:`AboveThreshold.release` checks that the mechanism draws
what the integral describes.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from ssl_fed.monitor.release import AboveThreshold

EPS, DELTA, T = 0.5, 0.1, 1.0
STREAM = [0.8, 1.0, 1.1]


def _cdf(x: float, b: float) -> float:
    return 0.5 * math.exp(x / b) if x < 0 else 1 - 0.5 * math.exp(-x / b)


def _prob(out: list[int], q: list[float], bt: float, bq: float) -> float:
    """P(the mechanism outputs ``out`` on statistics ``q``), threshold noise integrated out."""

    def density(r: float) -> float:
        p = math.exp(-abs(r) / bt) / (2 * bt)
        for o, qi in zip(out, q, strict=True):
            fire = 1 - _cdf(T + r - qi, bq)
            p *= fire if o else 1 - fire
        return p

    kinks = [0.0] + [qi - T for qi in q]
    return integrate.quad(density, -60 * bt, 60 * bt, points=kinks, limit=400)[0]


def _worst_log_ratio(bt: float, bq: float) -> float:
    worst = 0.0
    outputs = [[0] * (k - 1) + [1] for k in (1, 2, 3)] + [[0, 0, 0]]
    for out in outputs:
        q = STREAM[: len(out)]
        for signs in itertools.product((-1, 0, 1), repeat=len(out)):
            q2 = [qi + s * DELTA for qi, s in zip(q, signs, strict=True)]
            a, b = _prob(out, q, bt, bq), _prob(out, q2, bt, bq)
            worst = max(worst, abs(math.log(a / b)))
    return worst


def test_neighbouring_streams_change_no_output_probability_by_more_than_e_eps() -> None:
    # Prepare
    svt = AboveThreshold(EPS, T, DELTA)
    # Execute
    worst = _worst_log_ratio(svt.threshold_scale, svt.query_scale)
    # Assert: within ε; and the check can fail: a quarter of the query noise breaks it
    assert worst <= EPS
    assert _worst_log_ratio(svt.threshold_scale, svt.query_scale / 4) > EPS


def test_release_draws_the_mechanism_the_integral_describes() -> None:
    # Prepare: 20,000 fresh epochs over the same 3-round stream
    n, rng = 20_000, np.random.default_rng(0)
    svt = AboveThreshold(EPS, T, DELTA)
    counts = {1: 0, 2: 0, 3: 0, 0: 0}
    # Execute
    for _ in range(n):
        svt.noisy_threshold = None
        first = next((k for k, q in enumerate(STREAM, 1) if svt.release(q, rng, _free)), 0)
        counts[first] += 1
    # Assert: each first-fire frequency within 4 binomial SDs of the integral
    bt, bq = svt.threshold_scale, svt.query_scale
    expected = {k: _prob([0] * (k - 1) + [1], STREAM[:k], bt, bq) for k in (1, 2, 3)}
    expected[0] = _prob([0, 0, 0], STREAM, bt, bq)
    assert sum(expected.values()) == pytest.approx(1.0, abs=1e-6)
    for k, p in expected.items():
        assert abs(counts[k] / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def _free(epsilon: float, mechanism: str) -> None:
    pass
