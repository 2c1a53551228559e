"""Tests for simulated-site partitioning."""

from __future__ import annotations

import pytest
import torch

from ssl_fed.config import DataConfig, PartitionConfig
from ssl_fed.data import DataError, ImageDataset, load_partition, partition_dataset
from ssl_fed.data.persons import synthetic_persons


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


def _persons(data: ImageDataset, per_person: int) -> ImageDataset:
    """Person ``k`` owns images ``per_person*k .. per_person*(k+1)-1`` (labels mixed within)."""
    ids = tuple(f"p{i // per_person:03d}" for i in range(len(data)))
    return ImageDataset(data.images, data.labels, data.source, ids)


@pytest.mark.parametrize("kind", ["iid", "dirichlet"])
def test_person_ids_keep_each_person_at_one_site(kind: str) -> None:
    # Prepare: 150 images, persons of 4 (the last of 2), persons straddling the class blocks
    data = _persons(_dataset(), 4)
    cfg = PartitionConfig(kind=kind, alpha=0.5, seed=1)
    # Execute
    sites = partition_dataset(data, cfg, 4)
    # Assert: every image once; each person's ids at exactly one site, all of their images there
    ids = [i for s in sites for i in _ids(s)]
    assert sorted(ids) == list(range(150))
    site_of: dict[str, set[int]] = {}
    for k, s in enumerate(sites):
        assert s.persons is not None
        assert all(s.persons[j] == f"p{i // 4:03d}" for j, i in enumerate(_ids(s)))
        for person in s.persons:
            site_of.setdefault(person, set()).add(k)
    assert len(site_of) == 38 and all(len(v) == 1 for v in site_of.values())


def test_too_few_persons_for_the_sites_is_refused() -> None:
    with pytest.raises(DataError, match=r"38 persons .* into 39 sites"):
        partition_dataset(_persons(_dataset(), 4), PartitionConfig(kind="iid"), 39)


def test_load_partition_gives_synthetic_persons_over_the_pooled_data() -> None:
    # Prepare: synthetic persons of 5 images, drawn over the pooled 150 images
    data = _dataset()
    persons = DataConfig(synthetic_persons=5, seed=7)
    # Execute
    sites = [load_partition(data, PartitionConfig(kind="iid"), k, 3, persons) for k in range(3)]
    # Assert: the ids of synthetic_persons over all 150 images, every person whole at one site
    truth = synthetic_persons(150, 5, 7)
    for s in sites:
        assert s.persons is not None
        assert list(s.persons) == [truth[i] for i in _ids(s)]
    owners = [set(s.persons or ()) for s in sites]
    assert sum(len(o) for o in owners) == 30 and not (owners[0] & owners[1])
    assert all(len(s) == 5 * len(o) for s, o in zip(sites, owners, strict=True))
