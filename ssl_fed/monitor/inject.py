"""Injected drift for simulations: ``sim.drift=[{site, round, kind, strength}]``.

Each kind maps a window of images ``[N, C, H, W]`` in ``[0, 1]`` (and its labels) to a drifted
window of the same size, with ``strength`` in ``[0, 1]`` (0: no change):

* ``rotate``: every image rotated by ``strength x 90`` degrees (bilinear, zero fill);
* ``blur``: Gaussian blur with ``sigma = 2 x strength`` pixels;
* ``contrast``: each image pulled toward its own mean, ``x' = m + (1 - strength)(x - m)``;
* ``class_prior``: the window is redrawn so that a ``strength`` fraction of it comes from the
  lower half of the classes present (a seasonal change in what is photographed);
* ``domain``: a ``strength`` fraction of the window replaced by procedurally generated stroke
  images (:mod:`ssl_fed.data.synthetic`), a different domain that shares the format.

Drift starts at ``round`` and persists (a new scanner does not go away).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ssl_fed.config import ConfigError

if TYPE_CHECKING:
    from ssl_fed.config import RootConfig
    from ssl_fed.data import ImageDataset

DRIFT_KINDS = ("rotate", "blur", "contrast", "class_prior", "domain")


@dataclass(frozen=True)
class DriftSpec:
    """Drift of ``kind`` at ``strength`` on ``site`` from ``round`` on."""

    site: int
    round: int
    kind: str
    strength: float


def parse_drift(raw: Sequence[Mapping[str, Any]], num_sites: int, rounds: int) -> list[DriftSpec]:
    """Validate ``sim.drift`` entries; raise :class:`ConfigError` naming the entry and the fix."""
    specs = []
    for i, entry in enumerate(raw):
        where = f"sim.drift[{i}]"
        keys = set(entry) if isinstance(entry, Mapping) else set()
        if keys != {"site", "round", "kind", "strength"}:
            raise ConfigError(
                f"{where}={entry!r} is invalid: give exactly site, round, kind and strength, "
                "e.g. {site: 3, round: 5, kind: rotate, strength: 0.5}"
            )
        site, rnd, kind, strength = entry["site"], entry["round"], entry["kind"], entry["strength"]
        if type(site) is not int or not 0 <= site < num_sites:
            raise ConfigError(f"{where}.site={site!r} is invalid: use 0..{num_sites - 1}")
        if type(rnd) is not int or not 1 <= rnd <= rounds:
            raise ConfigError(f"{where}.round={rnd!r} is invalid: use 1..{rounds}")
        if kind not in DRIFT_KINDS:
            raise ConfigError(f"{where}.kind={kind!r} is invalid: use one of {list(DRIFT_KINDS)}")
        ok = isinstance(strength, int | float) and not isinstance(strength, bool)
        if not ok or not math.isfinite(strength) or not 0 <= strength <= 1:
            raise ConfigError(f"{where}.strength={strength!r} is invalid: use 0 <= strength <= 1")
        specs.append(DriftSpec(site, rnd, str(kind), float(strength)))
    return specs


def active_drift(specs: Sequence[DriftSpec], site: int, round: int) -> DriftSpec | None:
    """Return the drift in force at ``site`` in ``round`` (the latest that has started), if any."""
    started = [s for s in specs if s.site == site and s.round <= round]
    return max(started, key=lambda s: s.round) if started else None


def rotate(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Rotate every image by ``strength x 90`` degrees about its centre."""
    angle = math.radians(90.0 * strength)
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=images.dtype)
    grid = F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), False)
    return F.grid_sample(images, grid, align_corners=False)


def blur(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Gaussian blur, ``sigma = 2 x strength`` pixels (separable, reflect padding)."""
    sigma = 2.0 * strength
    if sigma <= 0:
        return images.clone()
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    ch = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(ch, 1, 1, 1), groups=ch)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(ch, 1, 1, 1), groups=ch)


def contrast(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Pull every image toward its own mean by ``strength``."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (1.0 - strength) * (images - mean)


def class_prior_rows(
    labels: torch.Tensor, n: int, strength: float, g: torch.Generator
) -> torch.Tensor:
    """Draw ``n`` rows (with replacement): ``strength`` from the lower half of the classes."""
    classes = torch.unique(labels)
    low = torch.isin(labels, classes[: max(1, classes.numel() // 2)])
    weights = torch.where(low, 1.0, 1.0 - strength) + 1e-12
    return torch.multinomial(weights / weights.sum(), n, replacement=True, generator=g)


def domain(images: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Replace a ``strength`` fraction of the window by generated stroke images."""
    from ssl_fed.data.synthetic import generate_strokes

    n, ch, size = images.shape[0], images.shape[1], images.shape[-1]
    k = round(strength * n)
    out = images.clone()
    if k:
        rows = torch.randperm(n, generator=g)[:k]
        out[rows] = generate_strokes(k, size, ch, g).to(images.dtype)
    return out


def apply_drift(
    spec: DriftSpec, pool: torch.Tensor, labels: torch.Tensor, n: int, g: torch.Generator
) -> torch.Tensor:
    """Draw a window of ``n`` images from ``pool`` under ``spec``'s drift."""
    if spec.kind == "class_prior":
        return pool[class_prior_rows(labels, n, spec.strength, g)]
    window = pool[torch.randint(pool.shape[0], (n,), generator=g)]
    if spec.kind == "rotate":
        return rotate(window, spec.strength)
    if spec.kind == "blur":
        return blur(window, spec.strength)
    if spec.kind == "contrast":
        return contrast(window, spec.strength)
    return domain(window, spec.strength, g)


def drifted_dataset(cfg: RootConfig, site: int, data: ImageDataset, round: int) -> ImageDataset:
    """Return a simulated site's images in ``round`` under ``sim.drift`` (``data`` if none).

    The drift in force (:func:`active_drift`) is applied to every image of the site, training
    and monitor alike, with a generator seeded from ``sim.seed`` and the site, so the drifted set
    is the same in every round the drift lasts. ``class_prior`` keeps every image of the lower
    half of the classes and a ``1 - strength`` fraction of the others (no duplicated rows, so
    one image stays one privacy unit); ``domain`` replaces a ``strength`` fraction of the images.
    Simulation only: a deployed site's data drifts by itself.
    """
    spec = active_drift(parse_drift(cfg.sim.drift, cfg.sim.num_sites, cfg.sim.rounds), site, round)
    if spec is None:
        return data
    g = torch.Generator().manual_seed(cfg.sim.seed * 1000 + site)
    images = data.images
    if spec.kind == "class_prior":
        if data.labels is None:
            raise ConfigError(f"sim.drift: class_prior on site {site} needs labelled data")
        classes = torch.unique(data.labels)
        low = torch.isin(data.labels, classes[: max(1, classes.numel() // 2)])
        keep = low | (torch.rand(len(data), generator=g) < 1.0 - spec.strength)
        rows = torch.nonzero(keep).flatten()
        persons = None if data.persons is None else tuple(data.persons[i] for i in rows.tolist())
        return replace(data, images=images[rows], labels=data.labels[rows], persons=persons)
    if spec.kind == "rotate":
        out = rotate(images, spec.strength)
    elif spec.kind == "blur":
        out = blur(images, spec.strength)
    elif spec.kind == "contrast":
        out = contrast(images, spec.strength)
    else:
        out = domain(images, spec.strength, g)
    return replace(data, images=out.contiguous())
