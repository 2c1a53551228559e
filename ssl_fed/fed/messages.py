"""Train message layouts shared by the server and the sites, and a round's aggregation outcome.

Two layouts exist; the aggregator ``aggregation.name`` selects names its ``reply_layout``
(:mod:`ssl_fed.fed.aggregators`):

- ``message`` (``secagg`` and ``plain``): Flower's Message-API records. The server sends
  ``{"arrays": ArrayRecord(global federated arrays, by state-dict name), "config":
  ConfigRecord({"run-id", "round"})}``; a site replies ``{"arrays": ArrayRecord(delta, float32,
  same names and order), "metrics": MetricRecord({"num-examples": 1, <whitelisted scalars>})}``.
  Under ``secagg`` the site's :func:`~ssl_fed.fed.secagg_mod.secagg_mod` masks ``arrays`` and
  the weight; the whitelisted scalars travel in the clear beside the masked vector.
- ``legacy`` (``flower-secaggplus``): Flower's compat ``fitins.*`` / ``fitres.*`` records, which
  the stock ``secaggplus_mod`` expects.

Every site has weight 1 (:data:`~ssl_fed.fed.layout.AGGREGATION_WEIGHT`): weighting by example
count would reveal each site's data size.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from ssl_fed.fed.arrays import NDArray
from ssl_fed.fed.layout import ARRAYS, CONFIG, METRICS, WEIGHT_KEY, RoundOutcome

__all__ = ["ARRAYS", "CONFIG", "METRICS", "WEIGHT_KEY", "RoundOutcome"]


def train_content(arrays: list[NDArray], names: list[str], run_id: str, round: int) -> RecordDict:
    """Build the server's ``message``-layout train content (global arrays by name + config)."""
    record = ArrayRecord(
        {n: Array(np.ascontiguousarray(a, np.float32)) for n, a in zip(names, arrays, strict=True)}
    )
    return RecordDict({ARRAYS: record, CONFIG: ConfigRecord({"run-id": run_id, "round": round})})


def read_train_request(
    content: RecordDict, layout: str
) -> tuple[list[NDArray], list[str], str, int]:
    """Return (global arrays, their names, run id, round) from a train request of ``layout``."""
    if layout == "legacy":
        fitins = compat.recorddict_to_fitins(content, keep_input=True)
        arrays = [np.asarray(a, np.float32) for a in parameters_to_ndarrays(fitins.parameters)]
        cfg = fitins.config
        names = [str(i) for i in range(len(arrays))]
        return arrays, names, str(cfg["run-id"]), int(cfg["round"])  # type: ignore[arg-type]
    record, conf = content.array_records[ARRAYS], content.config_records[CONFIG]
    arrays = [np.asarray(a.numpy(), np.float32) for a in record.values()]
    return arrays, list(record), str(conf["run-id"]), int(conf["round"])  # type: ignore[arg-type]


def train_reply(
    delta: list[NDArray], names: list[str], scalars: dict[str, float], layout: str
) -> RecordDict:
    """Build a site's train reply of ``layout``: delta arrays, weight 1 and the scalars."""
    if layout == "legacy":
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(delta), 1, dict(scalars))
        return compat.fitres_to_recorddict(fitres, keep_input=True)
    record = ArrayRecord(
        {n: Array(np.ascontiguousarray(a)) for n, a in zip(names, delta, strict=True)}
    )
    return RecordDict({ARRAYS: record, METRICS: MetricRecord({WEIGHT_KEY: 1, **scalars})})


def read_train_reply(content: RecordDict) -> tuple[list[NDArray], dict[str, float]]:
    """Return (delta arrays, scalars without the weight) of a ``message``-layout reply."""
    arrays = [a.numpy() for a in content.array_records[ARRAYS].values()]
    metrics = dict(content.metric_records[METRICS])
    return arrays, {k: v for k, v in metrics.items() if k != WEIGHT_KEY}  # type: ignore[misc]
