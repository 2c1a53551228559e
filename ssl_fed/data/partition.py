"""Split one dataset into simulated sites with flwr-datasets' partitioners.

Simulation needs realistic heterogeneity: real sites rarely hold i.i.d. samples of one
distribution. The partitioners (Hsu et al. 2019, arXiv 1909.06335, for Dirichlet label skew;
McMahan et al. 2017, arXiv 1602.05629, for the pathological k-classes-per-client split) run over
a tiny in-memory table of ``(label, idx)`` rows, and the ``idx`` column maps each partition back
to positions in the tensor dataset, so images never pass through Arrow. With person ids the rows
are persons, so a person's images all go to one site. ``datasets`` and
``flwr_datasets`` are imported lazily (about 2.5 s), so loading a site's data never pays for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ssl_fed.config import DataConfig, PartitionConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import person_codes, with_persons
from ssl_fed.data.validation import DataError


def _iid(cfg: PartitionConfig, n: int, num_partitions: int) -> Any:
    from flwr_datasets.partitioner import IidPartitioner

    return IidPartitioner(num_partitions=num_partitions)


def _dirichlet(cfg: PartitionConfig, n: int, num_partitions: int) -> Any:
    from flwr_datasets.partitioner import DirichletPartitioner

    min_size = max(1, min(10, n // (2 * num_partitions)))
    return DirichletPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        alpha=cfg.alpha,
        min_partition_size=min_size,
        self_balancing=False,
        seed=cfg.seed,
    )


def _pathological(cfg: PartitionConfig, n: int, num_partitions: int) -> Any:
    from flwr_datasets.partitioner import PathologicalPartitioner

    return PathologicalPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        num_classes_per_partition=cfg.classes_per_site,
        seed=cfg.seed,
    )


PARTITIONERS: dict[str, Callable[[PartitionConfig, int, int], Any]] = {
    "iid": _iid,
    "dirichlet": _dirichlet,
    "pathological": _pathological,
}
"""Partition kind -> factory ``(cfg, n, num_partitions) -> flwr-datasets Partitioner``."""

_LABEL_FREE = frozenset({"iid"})


def _units(dataset: ImageDataset) -> tuple[list[torch.Tensor], torch.Tensor | None, str]:
    """Return the rows a partitioner splits: each image, or each person (all of their images).

    Returns the image positions of each unit, each unit's label (a person's most common label)
    and the unit's name for messages.
    """
    if dataset.persons is None:
        return list(torch.arange(len(dataset)).unsqueeze(1)), dataset.labels, "images"
    codes, names = person_codes(dataset.persons)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    members = [torch.from_numpy(order[bounds[p] : bounds[p + 1]]) for p in range(len(names))]
    labels = None
    if dataset.labels is not None:
        labels = torch.stack([torch.mode(dataset.labels[m]).values for m in members])
    return members, labels, "persons"


def _check_request(
    dataset: ImageDataset, cfg: PartitionConfig, num_partitions: int, n: int, what: str
) -> None:
    if cfg.kind not in PARTITIONERS:
        raise ValueError(f"unknown partition.kind={cfg.kind!r}; valid: {sorted(PARTITIONERS)}")
    if not 1 <= num_partitions <= n:
        raise DataError(
            f"cannot split {n} {what} from {dataset.source} into {num_partitions} sites; "
            f"use between 1 and {n} sites (each site needs at least one of the {what})."
        )
    if cfg.kind not in _LABEL_FREE and dataset.labels is None:
        raise DataError(
            f"partition.kind={cfg.kind} skews sites by label, but {dataset.source} has no "
            "labels; use partition.kind=iid or load labelled data (class sub-folders / npz "
            "'labels')."
        )


def partition_dataset(
    dataset: ImageDataset, cfg: PartitionConfig, num_partitions: int
) -> list[ImageDataset]:
    """Split ``dataset`` into ``num_partitions`` disjoint sites, deterministically by seed.

    Parameters
    ----------
    dataset : ImageDataset
        The pooled data; labels are required for ``dirichlet`` and ``pathological``. With
        person ids (``dataset.persons``) the split is by person.
    cfg : PartitionConfig
        ``kind`` (iid | dirichlet | pathological), ``alpha``, ``classes_per_site`` and ``seed``.
    num_partitions : int
        Number of simulated sites.

    Returns
    -------
    list of ImageDataset
        One dataset per site, in partition-id order.

    Raises
    ------
    ValueError
        For an unknown ``cfg.kind``.
    DataError
        For too few/many sites, missing labels, or a site left empty.

    Notes
    -----
    flwr's ``IidPartitioner`` shards rows contiguously, which on class-sorted data would be a
    label split; the table is therefore shuffled with ``cfg.seed`` first. Dirichlet resampling
    asks for ``min(10, N // (2 * sites))`` units per site, so small test sets stay feasible
    while real runs avoid near-empty sites; ``self_balancing`` stays off so the label skew is
    what alpha says.

    Person ids present (``privacy.unit=person``): the partitioner's rows are *persons*, each
    labelled with their most common label, and a site receives all of its persons' images. One
    person is then never split across sites, so the per-person ε a site's ledger reports is the
    person's ε in the whole simulation (a person at two sites would be two units, each charged
    separately: DESIGN §1 gives no cross-site composition).
    """
    members, unit_labels, what = _units(dataset)
    n = len(members)
    _check_request(dataset, cfg, num_partitions, n, what)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from datasets import Dataset

    order = torch.arange(n)
    if cfg.kind in _LABEL_FREE:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    labels = [0] * n if unit_labels is None else unit_labels[order].tolist()
    table = Dataset.from_dict({"label": labels, "idx": order.tolist()})
    partitioner = PARTITIONERS[cfg.kind](cfg, n, num_partitions)
    partitioner.dataset = table
    sites: list[ImageDataset] = []
    for pid in range(num_partitions):
        try:
            rows = partitioner.load_partition(pid)["idx"]
        except ValueError as err:
            raise DataError(
                f"partition.kind={cfg.kind} cannot split {n} {what} into {num_partitions} "
                f"sites: {err} Try fewer sites, a larger partition.alpha, or fewer "
                "partition.classes_per_site."
            ) from err
        if len(rows) == 0:
            raise DataError(
                f"site {pid} of {num_partitions} got no {what} (partition.kind={cfg.kind}); "
                "use a larger partition.alpha, fewer sites, or partition.kind=iid."
            )
        images = torch.cat([members[r] for r in rows])
        sites.append(dataset.subset(torch.sort(images).values))
    return sites


_CACHE: dict[tuple[object, ...], tuple[ImageDataset, list[ImageDataset]]] = {}
_CACHE_SIZE = 8


def load_partition(
    dataset: ImageDataset,
    cfg: PartitionConfig,
    partition_id: int,
    num_partitions: int,
    persons: DataConfig | None = None,
) -> ImageDataset:
    """Return site ``partition_id`` of :func:`partition_dataset`, computing the split once.

    Simulations call this once per site per round; re-running the Dirichlet sampler each time
    would be wasteful (and, were a seed ever unset, inconsistent). The cache keys on the
    dataset's identity and the config values and keeps the dataset alive alongside its
    partitions, so a recycled ``id()`` can never hit a stale entry.

    ``persons``: the data config of a ``privacy.unit=person`` run; the pooled data gets its
    person ids first (:func:`~ssl_fed.data.persons.with_persons`: its own, else synthetic ones
    over the *pooled* data), so the split is by person and each site keeps those ids.
    """
    if not 0 <= partition_id < num_partitions:
        raise DataError(
            f"partition_id={partition_id} is out of range for {num_partitions} sites; "
            f"use 0..{num_partitions - 1}."
        )
    who = None if persons is None else (persons.synthetic_persons, persons.seed)
    key: tuple[object, ...] = (id(dataset), cfg.kind, float(cfg.alpha), cfg.classes_per_site)
    key += (cfg.seed, num_partitions, who)
    entry = _CACHE.get(key)
    if entry is None or entry[0] is not dataset:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        pooled = dataset if persons is None else with_persons(dataset, persons)
        entry = (dataset, partition_dataset(pooled, cfg, num_partitions))
        _CACHE[key] = entry
    return entry[1][partition_id]
