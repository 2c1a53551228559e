"""Validation of the ``data`` (and its ``augment``) and ``partition`` groups."""

from __future__ import annotations

from ssl_fed.config.errors import require, require_finite_positive, require_registered
from ssl_fed.config.schema import DataConfig, PartitionConfig

PARTITIONS = ("iid", "dirichlet", "pathological")
"""Valid ``partition.kind`` values (:mod:`ssl_fed.data.partition`)."""


def validate_data(d: DataConfig) -> None:
    """Check ``data.*`` against the data-format registry and the ranges the loaders accept.

    The registry is imported here, not at module level, because the loaders import this
    package's schema.
    """
    from ssl_fed.data.loaders import load_splits  # noqa: F401  (registers every format)
    from ssl_fed.data.registry import DATASETS

    require_registered(d.name, "data.name", DATASETS)
    require(d.name == "digits" or bool(d.path), "data.path", d.path, "set data.path=DIR or FILE")
    require(4 <= d.image_size <= 64, "data.image_size", d.image_size, "use 4..64 pixels")
    require(d.channels in (None, 1, 3), "data.channels", d.channels, "use 1, 3 or null")
    require(d.on_bad_file in {"error", "skip"}, "data.on_bad_file", d.on_bad_file, "error|skip")
    require(0 < d.test_fraction < 1, "data.test_fraction", d.test_fraction, "use 0 < f < 1")
    require(
        d.public_size is None or d.public_size >= 1,
        "data.public_size",
        d.public_size,
        "declare the site's public size (>= 1 image, e.g. n rounded down to a bucket) or null",
    )
    require(
        d.synthetic_persons is None or d.synthetic_persons >= 1,
        "data.synthetic_persons",
        d.synthetic_persons,
        "use M >= 1 images per synthetic person (benchmarks only), or null",
    )
    a = d.augment
    require(0 < a.crop_scale_min <= 1, "data.augment.crop_scale_min", a.crop_scale_min, "(0, 1]")
    require(a.noise_std >= 0, "data.augment.noise_std", a.noise_std, "use a value >= 0")


def validate_partition(p: PartitionConfig) -> None:
    """Check ``partition.*`` (how a simulation splits one dataset into sites)."""
    require(p.kind in PARTITIONS, "partition.kind", p.kind, f"use {', '.join(PARTITIONS)}")
    require_finite_positive(p.alpha, "partition.alpha", "use alpha > 0 (smaller is more skewed)")
    require(p.classes_per_site >= 1, "partition.classes_per_site", p.classes_per_site, ">= 1")
