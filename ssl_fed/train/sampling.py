"""One step's batch: Poisson over the privacy units (images or persons), views' draws, clip units.

:class:`ImageSampler` is the per-image path (``privacy.unit=image``): each image is included
with probability q from its own keyed stream (:mod:`ssl_fed.train.randomness`).
:class:`PersonSampler` is ``privacy.unit=person``: each *person* is included with probability
``q = expected persons per batch / public number of persons``; a sampled person with more than
``privacy.max_images_per_person`` images contributes a uniform random subset of that many (the
cap is public); the person's images then form one unit (or join one random group of persons).

Notes
-----
Guarantee (person unit; the coupling of :mod:`ssl_fed.train.randomness` lifted to persons). Every
draw that shapes person ``p``'s contribution comes from keys that depend only on ``p``'s own id
and images: the person key is ``BLAKE2b(run key, "person" | id)`` (inclusion, capped subset, group
id) and each image key is ``BLAKE2b(run key, "image" | id | pixel hash | rank within p)`` (views).
Adding or removing a whole person (any number of images, above the cap or not) therefore leaves
every other person's inclusion, subset, group and views unchanged, so one step's clipped sum
moves by at most the plan's sensitivity (C for ``person``, 2C for ``person-group``; see
:mod:`ssl_fed.tasks.units`), and person inclusion is independent across persons with
probability exactly q: the Poisson-subsampled Gaussian mechanism the accountant assumes, with
the person as the unit. The subset is drawn from the secret per-training key, never a public
seed, so which of a person's images were used is as unpredictable as the sampling itself.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import person_codes, with_persons
from ssl_fed.tasks.units import UnitPlan, form_person_units, form_units, group_ids
from ssl_fed.train.randomness import BatchDraws, UnitStreams, unit_ids


class Batch(NamedTuple):
    """Image positions of one step, their draws, and the clipping units over them."""

    positions: NDArray[np.int64]
    draws: BatchDraws
    unit_index: torch.Tensor
    mask: torch.Tensor


class Sampler(Protocol):
    """Builds step ``t``'s batch."""

    def batch(self, step: int) -> Batch:
        """Return the batch of ``step``."""


class ImageSampler:
    """Per-image units: Poisson over images, views and group ids from each image's stream."""

    def __init__(self, run_key: bytes, data: ImageDataset, plan: UnitPlan, rate: float) -> None:
        self.streams = UnitStreams(run_key, unit_ids(data.images))
        self.plan, self.rate = plan, rate

    def batch(self, step: int) -> Batch:
        """Images whose own uniform is below q; units per :func:`form_units`."""
        index = self.streams.poisson_batch(step, self.rate)
        draws = self.streams.at(step, index)
        unit_index, mask = form_units(len(index), self.plan, draws)
        return Batch(index, draws, unit_index, mask)


class PersonSampler:
    """Person units: Poisson over persons, a capped random subset each, units of persons."""

    def __init__(
        self, run_key: bytes, data: ImageDataset, plan: UnitPlan, rate: float, cap: int
    ) -> None:
        assert data.persons is not None, "person units need person ids"
        codes, names = person_codes(data.persons)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        self.members = [order[bounds[p] : bounds[p + 1]] for p in range(len(names))]
        self.people = UnitStreams(run_key, [b"person\0" + n.encode() for n in names])
        image_ids: list[bytes] = [b""] * len(data)
        for name, mine in zip(names, self.members, strict=True):
            own = unit_ids(data.images[torch.from_numpy(mine)])
            for position, uid in zip(mine.tolist(), own, strict=True):
                image_ids[position] = b"image\0" + name.encode() + b"\0" + uid
        self.images = UnitStreams(run_key, image_ids)
        self.plan, self.rate, self.cap = plan, rate, cap

    def chosen_images(self, step: int, person: int) -> NDArray[np.int64]:
        """Person ``person``'s images at ``step``: all, or a uniform random subset of ``cap``."""
        mine = self.members[person]
        if len(mine) <= self.cap:
            return mine
        u = self.people.uniform(step, "cap", len(mine), np.array([person], dtype=np.int64))
        return np.sort(mine[np.argsort(u[0].numpy(), kind="stable")[: self.cap]])

    def batch(self, step: int) -> Batch:
        """Persons whose own uniform is below q, their capped images, units of persons."""
        chosen = self.people.poisson_batch(step, self.rate)
        parts = [self.chosen_images(step, int(p)) for p in chosen]
        index = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        owner = torch.from_numpy(np.repeat(np.arange(len(parts)), [len(x) for x in parts]))
        group = None
        if self.plan.kind == "person-group":
            group = group_ids(len(chosen), self.plan, self.people.at(step, chosen))
        unit_index, mask = form_person_units(owner, self.plan, group)
        return Batch(index.astype(np.int64), self.images.at(step, index), unit_index, mask)


def unit_count(data: ImageDataset, unit: str) -> int:
    """How many privacy units the site holds (images, or persons): a private number."""
    if unit == "person":
        assert data.persons is not None
        return len(set(data.persons))
    return len(data)


def privacy_units(data: ImageDataset, cfg: RootConfig) -> int:
    """Return the site's number of privacy units under ``cfg`` (person ids resolved first)."""
    if cfg.privacy.unit == "person":
        data = with_persons(data, cfg.data)
    return unit_count(data, cfg.privacy.unit)


def make_sampler(
    run_key: bytes, data: ImageDataset, plan: UnitPlan, rate: float, cap: int
) -> Sampler:
    """Return the sampler of ``plan``'s unit (person plans need ``data.persons``)."""
    if plan.kind in ("person", "person-group"):
        return PersonSampler(run_key, data, plan, rate, cap)
    return ImageSampler(run_key, data, plan, rate)
