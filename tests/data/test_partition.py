"""Tests for simulated-site partitioning."""

from __future__ import annotations

import pytest
import torch

from ssl_fed.config import PartitionConfig
from ssl_fed.data import DataError, ImageDataset, load_partition, partition_dataset


def _dataset(n_per_class: int = 30, classes: int = 5, labelled: bool = True) -> ImageDataset:
    n = n_per_class * classes
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2) / n
    labels = torch.arange(classes).repeat_interleave(n_per_class) if labelled else None
    return ImageDataset(images.contiguous(), labels, "toy")


def _ids(site: ImageDataset) -> list[int]:
    return (site.images[:, 0, 0, 0] * 150).round().long().tolist()


def test_iid_sizes_sum_to_n_and_are_disjoint() -> None:
    # Prepare
    data = _dataset()
    # Execute
    sites = partition_dataset(data, PartitionConfig(kind="iid"), 4)
    # Assert
    ids = [i for s in sites for i in _ids(s)]
    assert sorted(ids) == list(range(150))
    assert all(37 <= len(s) <= 38 for s in sites)
    assert all(s.labels is not None and len(set(s.labels.tolist())) > 1 for s in sites)


def test_iid_works_without_labels() -> None:
    sites = partition_dataset(_dataset(labelled=False), PartitionConfig(kind="iid"), 3)
    assert sum(len(s) for s in sites) == 150 and all(s.labels is None for s in sites)


def test_dirichlet_is_deterministic_by_seed() -> None:
    # Prepare
    data = _dataset()
    # Execute
    a = partition_dataset(data, PartitionConfig(kind="dirichlet", alpha=0.5, seed=0), 3)
    b = partition_dataset(data, PartitionConfig(kind="dirichlet", alpha=0.5, seed=0), 3)
    c = partition_dataset(data, PartitionConfig(kind="dirichlet", alpha=0.5, seed=1), 3)
    # Assert
    assert [_ids(s) for s in a] == [_ids(s) for s in b]
    assert [_ids(s) for s in a] != [_ids(s) for s in c]
    assert sorted(i for s in a for i in _ids(s)) == list(range(150))


@pytest.mark.filterwarnings("ignore:Classes:UserWarning")
def test_pathological_limits_classes_per_site() -> None:
    # Prepare
    cfg = PartitionConfig(kind="pathological", classes_per_site=2, seed=0)
    # Execute
    sites = partition_dataset(_dataset(), cfg, 4)
    # Assert
    assert all(s.labels is not None and len(set(s.labels.tolist())) <= 2 for s in sites)


def test_too_many_sites_is_refused() -> None:
    with pytest.raises(DataError, match="into 151 sites"):
        partition_dataset(_dataset(), PartitionConfig(kind="iid"), 151)
    with pytest.raises(DataError, match="into 0 sites"):
        partition_dataset(_dataset(), PartitionConfig(kind="iid"), 0)


def test_label_skew_without_labels_is_refused() -> None:
    with pytest.raises(DataError, match=r"partition\.kind=iid"):
        partition_dataset(_dataset(labelled=False), PartitionConfig(kind="dirichlet"), 2)


def test_load_partition_caches_the_split() -> None:
    # Prepare
    data = _dataset()
    cfg = PartitionConfig(kind="dirichlet", seed=3)
    # Execute
    first = load_partition(data, cfg, 1, 3)
    again = load_partition(data, cfg, 1, 3)
    # Assert
    assert again is first
    assert _ids(first) == _ids(partition_dataset(data, cfg, 3)[1])
    with pytest.raises(DataError, match="out of range"):
        load_partition(data, cfg, 3, 3)
