"""Site data: loading, boundary validation and simulated partitioning.

The public API is :func:`load_splits` (one entry point for every ``data.name``),
:func:`partition_dataset` / :func:`load_partition` for simulations, and :class:`DataError`,
raised with the reason and the fix whenever site data are unusable.
"""

from ssl_fed.data.dataset import DataSplits, ImageDataset
from ssl_fed.data.loaders import load_splits
from ssl_fed.data.partition import load_partition, partition_dataset
from ssl_fed.data.validation import DataError, validate_images, validate_labels

__all__ = [
    "DataError",
    "DataSplits",
    "ImageDataset",
    "load_partition",
    "load_splits",
    "partition_dataset",
    "validate_images",
    "validate_labels",
]
