"""What a federation's server evaluates its global encoder on, and how its outputs label it.

Three kinds (``metrics.json`` ``evaluation``, TensorBoard and the printed summary say which;
:class:`ssl_fed.fed.tracking.RunTracker` runs the probe):

* ``pooled-benchmark`` (simulations only, :mod:`ssl_fed.fed.simulation`): the linear probe and
  kNN run at the server on the pooled labelled dataset whose training split *is* the sites' training
  images. It is a benchmark of the simulation, outside the privacy guarantee (no ε covers the
  server reading every site's images); its tags live under ``benchmark_pooled_outside_dp/``.
* ``public``: a deployed server probes only on a labelled test set the operator provides
  (``eval.public_path``, npz or folder, split by ``data.test_fraction``); tags ``probe_public/``.
* ``none``: a deployed server without ``eval.public_path`` does not probe at all.
"""

from __future__ import annotations

from dataclasses import replace

from ssl_fed.config import RootConfig
from ssl_fed.data import DataSplits, load_splits

EVALUATIONS = {
    "pooled-benchmark": (
        "benchmark_pooled_outside_dp",
        "benchmark evaluation on the pooled labelled data of all simulated sites (their "
        "training images), outside the privacy guarantee; simulation only",
    ),
    "public": ("probe_public", "linear probe and kNN on the operator's public labelled test set"),
    "none": ("", "no server-side evaluation (deployed server without eval.public_path)"),
}
"""Evaluation kind -> (TensorBoard prefix, label for metrics.json and the printed output)."""


def evaluation_kind(cfg: RootConfig, pooled: bool) -> str:
    """Return ``pooled-benchmark`` (simulation), ``public`` (``eval.public_path``) or ``none``."""
    if pooled:
        return "pooled-benchmark"
    return "public" if cfg.eval.public_path else "none"


def load_probe_splits(cfg: RootConfig, kind: str) -> DataSplits | None:
    """Return the labelled data the server probes on (never site data when deployed)."""
    if kind == "pooled-benchmark":
        return load_splits(cfg.data)
    if kind == "public":
        path = str(cfg.eval.public_path)
        name = "npz" if path.endswith(".npz") else "folder"
        return load_splits(replace(cfg.data, name=name, path=path, test_path=None))
    return None
