"""ssl-fed's own SecAgg+ (Bell et al., CCS 2020) with full-strength masks, on Flower's Message API.

Public API: :class:`SecAggConfig`, :func:`run_secagg_round` (server, Grid-level),
:func:`secagg_mod` / :func:`make_secagg_mod` (site, client mod), :func:`run_local_round`
(in-process, no Flower), :class:`AggregateResult` / :class:`Skipped`, and the ArrayRecord helpers.
"""

from ssl_fed.secagg.driver import run_secagg_round, spec_from_arrays, to_array_record
from ssl_fed.secagg.local import run_local_round
from ssl_fed.secagg.mod import make_secagg_mod, secagg_mod
from ssl_fed.secagg.params import PROTOCOL_VERSION, SecAggConfig
from ssl_fed.secagg.quantize import quantization_bound
from ssl_fed.secagg.result import AggregateResult, Skipped

__all__ = [
    "PROTOCOL_VERSION",
    "AggregateResult",
    "SecAggConfig",
    "Skipped",
    "make_secagg_mod",
    "quantization_bound",
    "run_local_round",
    "run_secagg_round",
    "secagg_mod",
    "spec_from_arrays",
    "to_array_record",
]
