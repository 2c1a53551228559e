"""The data-format registry: ``data.name`` -> a function from ``cfg.data`` to train/test splits.

A format registers itself with :func:`register_data_format` (it builds both splits) or, when it
reads one path into one :class:`~ssl_fed.data.dataset.ImageDataset`, with
:func:`register_path_format`, which adds the shared rules: ``data.path`` is required, the test
split comes from ``data.test_path`` (labels required) or else a seeded stratified
``data.test_fraction`` split of labelled training data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import DataSplits, ImageDataset
from ssl_fed.data.validation import DataError

logger = logging.getLogger("ssl_fed.data")

SplitLoader = Callable[[DataConfig], DataSplits]
PathLoader = Callable[[DataConfig, str], ImageDataset]

DATASETS: dict[str, SplitLoader] = {}
"""Registered data formats by ``data.name``: the single list that config validation reads."""


def register_data_format(name: str) -> Callable[[SplitLoader], SplitLoader]:
    """Register a split loader ``cfg.data -> DataSplits`` under ``name``."""

    def wrap(load: SplitLoader) -> SplitLoader:
        DATASETS[name] = load
        return load

    return wrap


def register_path_format(name: str) -> Callable[[PathLoader], PathLoader]:
    """Register a path loader ``(cfg.data, path) -> ImageDataset`` under ``name``.

    The loader must return validated images in ``[0, 1]``, resized to ``cfg.image_size`` (see
    :func:`ssl_fed.data.loaders.resize_images` and ``convert_channels``).
    """

    def wrap(load: PathLoader) -> PathLoader:
        DATASETS[name] = path_splits(load)
        return load

    return wrap


def path_splits(load: PathLoader) -> SplitLoader:
    """Wrap a path loader into a split loader (``test_path``, else a labelled split)."""

    def splits(cfg: DataConfig) -> DataSplits:
        if not cfg.path:
            raise DataError(f"data.name={cfg.name} needs data.path; set data.path=DIR or FILE.")
        train = load(cfg, cfg.path)
        if not cfg.test_path:
            return split_train_test(train, cfg.test_fraction, cfg.seed)
        test = load(replace(cfg, channels=train.channels), cfg.test_path)
        if test.labels is None:
            raise DataError(
                f"data.test_path={cfg.test_path} has no labels, but the test split exists for "
                "evaluation; use class sub-folders (folder), a 'labels' array (npz) or a labels "
                "file named by the IDX rule (idx: *-labels-idx1-ubyte[.gz])."
            )
        return DataSplits(train, test)

    return splits


def split_train_test(dataset: ImageDataset, test_fraction: float, seed: int) -> DataSplits:
    """Split a labelled dataset into train/test, stratified by label when possible.

    Stratification keeps every class in both halves, which matters for the few-label probes;
    it is impossible when a class has a single example (or there are fewer test slots than
    classes), so the split then falls back to a plain seeded shuffle and logs why.
    """
    n = len(dataset)
    if dataset.labels is None or n < 2:
        return DataSplits(dataset, None)
    positions = np.arange(n)
    labels = dataset.labels.numpy()
    try:
        train_idx, test_idx = train_test_split(
            positions, test_size=test_fraction, stratify=labels, random_state=seed
        )
    except ValueError as err:
        logger.info("%s: stratified split impossible (%s); splitting without", dataset.source, err)
        train_idx, test_idx = train_test_split(
            positions, test_size=test_fraction, random_state=seed
        )
    return DataSplits(
        dataset.subset(torch.from_numpy(np.sort(train_idx))),
        dataset.subset(torch.from_numpy(np.sort(test_idx))),
    )
