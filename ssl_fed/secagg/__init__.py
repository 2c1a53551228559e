"""ssl-fed's own SecAgg+ (Bell et al., CCS 2020), full-strength masks: crypto and state machines.

Pure protocol code over bytes and arrays, with no Flower import (a test enforces it): the
site's and the server's state machines (:mod:`~ssl_fed.secagg.client`,
:mod:`~ssl_fed.secagg.server`), the primitives (:mod:`~ssl_fed.secagg.keys`,
:mod:`~ssl_fed.secagg.shamir`, :mod:`~ssl_fed.secagg.prg`; :mod:`~ssl_fed.secagg.stream` adds the
masks chunk by chunk into the masked buffer) and :func:`run_local_round`
(in-process, no Flower). Flower's Message API carries it through :mod:`ssl_fed.fed.secagg_driver`
(server, Grid-level ``run_secagg_round``) and :mod:`ssl_fed.fed.secagg_mod` (site, client mod).

Public API: :class:`SecAggConfig`, :func:`run_local_round`, :class:`AggregateResult` /
:class:`Skipped`, :func:`quantization_bound` and :data:`PROTOCOL_VERSION`.
"""

from ssl_fed.secagg.local import run_local_round
from ssl_fed.secagg.params import PROTOCOL_VERSION, SecAggConfig
from ssl_fed.secagg.quantize import quantization_bound
from ssl_fed.secagg.result import AggregateResult, Skipped

__all__ = [
    "PROTOCOL_VERSION",
    "AggregateResult",
    "SecAggConfig",
    "Skipped",
    "quantization_bound",
    "run_local_round",
]
