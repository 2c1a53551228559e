"""Aggregator registry: ``aggregation.name`` -> one class (:mod:`~ssl_fed.fed.aggregators.base`).

Registered: ``secagg`` (ssl-fed's SecAgg+, the default in configs/), ``flower-secaggplus``
(Flower's stock SecAgg+, comparison) and ``plain`` (no secure aggregation, comparison). A new
aggregator is one module with one ``@register_aggregator`` class, imported below;
``secagg_distributed`` is ``secagg``'s variant for ``privacy.noise=distributed``
(``@register_noise_variant``, chosen by :func:`build_aggregator`). Importing
this package does not import Flower.
"""

from ssl_fed.fed.aggregators import flower_secaggplus, plain, secagg, secagg_distributed
from ssl_fed.fed.aggregators.base import (
    AGGREGATORS,
    Aggregator,
    aggregator_class,
    build_aggregator,
    names,
    register_aggregator,
)

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "aggregator_class",
    "build_aggregator",
    "flower_secaggplus",
    "names",
    "plain",
    "register_aggregator",
    "secagg",
    "secagg_distributed",
]
