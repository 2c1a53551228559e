"""The server's last hop: the survivors' unmasked sum -> a checked result (or a clean skip).

:func:`checked_result` receives the sum :func:`ssl_fed.secagg.unmask.unmasked_sum` left after
every mask was removed and decides what the round yields. Fixed-point mode: the sum must pass
:func:`~ssl_fed.secagg.quantize.check_sum` (every coordinate of the mean inside ``[-c, c]``, a
total weight equal to the survivors', a possible clip count) and decode to finite values, then
becomes the weighted mean (:func:`~ssl_fed.secagg.quantize.decode_mean`). Modular mode
(``SecAggConfig.modular_bits``): only the weight word is checked
(:func:`~ssl_fed.secagg.modular.check_modular_sum`) and the raw value words go back for the
caller to decode. A sum that fails ends the round as ``Skipped(stage="check")``.

Notes
-----
Post-processing of the revealed sum only: nothing here sees a single site's input, so the
guarantees of :mod:`ssl_fed.secagg.server` (the server learns ``Σ w_i x_i`` and ``Σ w_i`` over the
survivors, Bell et al., CCS 2020, Thm. 3.6) are unchanged.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ssl_fed.secagg.modular import check_modular_sum, modular_values
from ssl_fed.secagg.quantize import check_sum, decode_mean, quantization_bound
from ssl_fed.secagg.result import AggregateResult, Skipped
from ssl_fed.secagg.setup import RoundSetup


def checked_result(
    s: RoundSetup,
    total: NDArray[np.unsignedinteger],
    alive: list[int],
    rejected: dict[int, str],
    timings: dict[str, float],
    fixed_weight: int | None,
) -> AggregateResult | Skipped:
    """Check and decode the survivors' (``alive``) unmasked sum ``total`` (module docstring)."""

    def fail(reason: str) -> Skipped:
        return Skipped(
            f"rejected aggregate: {reason}", "check", alive, dict(rejected), dict(timings)
        )

    gone = sorted(set(s.node_ids) - set(alive))
    if s.shape.modular_bits:
        bad = check_modular_sum(total, len(alive), s.max_weight, fixed_weight)
        if bad is not None:
            return fail(bad)
        words = modular_values(total, s.shape.modular_bits)
        result = AggregateResult({}, int(total[-1]), alive, gone, dict(rejected), 0.0)
        result.timings, result.words = dict(timings), words
        return result
    bad = check_sum(total, s.shape.value_bits, len(alive), s.max_weight, fixed_weight)
    if bad is not None:
        return fail(bad)
    mean, weight, clipped = decode_mean(total, s.clip_range, s.shape.value_bits)
    if not np.all(np.isfinite(mean)):
        return fail("non-finite mean")
    return AggregateResult(
        s.split(mean),
        weight,
        alive,
        gone,
        dict(rejected),
        quantization_bound(s.clip_range, s.shape.value_bits),
        dict(timings),
        clipped=clipped,
    )
