"""Measure a served encoder on public data: the probe numbers a serving step may change.

Quantization and distillation change the features, so their cost is measured the way the
encoder is judged: a linear probe (:mod:`ssl_fed.eval.linear_probe`) on frozen features. The
data are scikit-learn's digits (public, shipped with the package, its fixed stratified split),
resized to the encoder's input; no site's data are read, so measuring spends no budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssl_fed.config import DataConfig, EvalConfig
from ssl_fed.data import load_splits
from ssl_fed.eval.linear_probe import probe_label_efficiency
from ssl_fed.serve.runtime import Batch, ServedModel

PROBE_DATA = "sklearn digits (public): its fixed stratified split, 1257 train / 540 test images"
LABELS_PER_CLASS = (10, -1)


def features_of(model: ServedModel, images: Batch, batch_size: int = 256) -> Batch:
    """Run ``model`` over ``images`` in batches of ``batch_size``; float32 ``[N, D]``."""
    chunks = [model.run(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks, axis=0)


def probe_public(model: ServedModel, draws: int = 3) -> dict[str, Any]:
    """Linear-probe accuracy of ``model``'s features on digits at 10 labels/class and all.

    Returns ``{"data": PROBE_DATA, "accuracy": {"10": a, "all": b}}``; ``10`` is the mean over
    ``draws`` seeded label draws (:func:`probe_label_efficiency`).
    """
    splits = load_splits(
        DataConfig(name="digits", image_size=model.image_size, channels=model.channels)
    )
    train, test = splits.train, splits.test
    assert test is not None and train.labels is not None and test.labels is not None
    xtr = features_of(model, train.images.numpy())
    xte = features_of(model, test.images.numpy())
    cfg = EvalConfig(labels_per_class=list(LABELS_PER_CLASS), draws=draws)
    result = probe_label_efficiency(
        xtr,
        train.labels.numpy(),
        xte,
        test.labels.numpy(),
        labels_per_class=cfg.labels_per_class,
        draws=cfg.draws,
        seed=cfg.seed,
    )
    return {"data": PROBE_DATA, "accuracy": {k: float(r.mean) for k, r in result.items()}}
