"""Procedurally generated images: a privacy-free source for a warm start of the encoder.

DP-SGD from a random start on a small site learns little above the noise floor. Images drawn
by a short program contain no one's data, so an encoder pretrained on them costs no site any
privacy budget, and DP-SGD can then spend its budget adapting a good start (Baradad et al.,
"Learning to See by Looking at Noise", NeurIPS 2021, arXiv 2106.05963; Kataoka et al.,
"Pre-training without Natural Images" (FractalDB), ACCV 2020; Tramèr & Boneh, "Differentially
Private Learning Needs Better Features", arXiv 2011.11660).

Families (:data:`FAMILIES`)
---------------------------
``strokes``
    Grayscale pen strokes on a blank page: straight lines, cubic Bézier curves, circular and
    elliptic arcs, and the occasional filled blob (a dot or a loop filled in). Rendered at 32x32
    as a line integral of each curve convolved with a Gaussian pen (anti-aliased, stroke width
    varying per image), then downsampled with antialiasing. It resembles handwriting, digits,
    glyphs and line drawings: pick it for document-like, sketch-like or other ink-on-paper data
    (the default digits). With 3 channels the ink and paper get random colours.
``dead_leaves``
    Overlapping opaque discs, squares and rotated rectangles with uniform random colours and
    power-law sizes (p(r) ~ r^-3, the scale-invariant "dead leaves" model), painted back to front
    over a random background with 1-pixel anti-aliased edges. Baradad et al. found it (with
    mixed shapes) among the best simple generators for natural photographs. Pick it for RGB
    natural-image data (objects, scenes, textures); grayscale gives its luma.

Every family is vectorised over images: the Python loops run over a handful of primitives per
image (strokes, leaves, pen widths), never over images, so 8,000 images take well under a
second (see ``benchmarks/warm_start_synthetic.py``). Output is deterministic given ``seed``
(one ``torch.Generator`` draws every random number).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.loaders import resize_images

Generator = Callable[[int, int, int, torch.Generator], torch.Tensor]
"""A family: ``(n, image_size, channels, generator) -> float32 [n, channels, size, size]``."""

CANVAS = 32
"""Side of the canvas that ``strokes`` are drawn on before downsampling."""

_STROKES_MAX = 4
_POINTS_PER_STROKE = 96
_PEN_SIGMAS = (1.0, 1.4, 1.8, 2.3)
_LEAVES = 40


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def _stroke_points(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample points along each image's strokes: ``[n, K*T, 2]`` (x, y) and arc weights.

    Each stroke is a line, a cubic Bézier or an elliptic arc (chosen per stroke); all three are
    evaluated for every stroke and one is kept, which costs little and keeps the code branch-free.
    A point's weight is the length of curve it stands for, so the rendered ink is a line integral
    whatever the parametrisation; inactive strokes (each image has 1..4) get weight 0.
    """
    k, t_n = _STROKES_MAX, _POINTS_PER_STROKE
    t = torch.linspace(0.0, 1.0, t_n).view(1, 1, t_n, 1)
    ctrl = _uniform((n, k, 4, 2), 4.0, CANVAS - 4.0, g)
    p0, p1, p2, p3 = (ctrl[:, :, i : i + 1] for i in range(4))
    line = p0 + t * (p3 - p0)
    bezier = (
        (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    )
    centre = _uniform((n, k, 1, 2), 10.0, CANVAS - 10.0, g)
    radii = _uniform((n, k, 1, 2), 3.0, 10.0, g)
    start = _uniform((n, k, 1, 1), 0.0, 2 * math.pi, g)
    sweep = _uniform((n, k, 1, 1), 0.5 * math.pi, 2 * math.pi, g)
    angle = start + sweep * t
    arc = centre + radii * torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
    kind = torch.randint(0, 3, (n, k, 1, 1), generator=g)
    points = torch.where(kind == 0, line, torch.where(kind == 1, bezier, arc))
    step = (points[:, :, 1:] - points[:, :, :-1]).norm(dim=-1)
    weight = torch.cat([step[:, :, :1], 0.5 * (step[:, :, 1:] + step[:, :, :-1]), step[:, :, -1:]], 2)
    strokes = torch.randint(1, k + 1, (n, 1), generator=g)
    active = (torch.arange(k).view(1, k) < strokes).float().unsqueeze(-1)
    return points.reshape(n, k * t_n, 2), (weight * active).reshape(n, k * t_n)


def _splat(points: torch.Tensor, weight: torch.Tensor, size: int) -> torch.Tensor:
    """Add each weighted point bilinearly into its image's ``size x size`` grid: ``[n, 1, s, s]``."""
    n, p = weight.shape
    base = points.floor()
    frac = points - base
    base_i = base.long()
    flat = torch.zeros(n * size * size)
    image = torch.arange(n).view(n, 1) * size * size
    for dx in (0, 1):
        for dy in (0, 1):
            x = base_i[..., 0] + dx
            y = base_i[..., 1] + dy
            wx = frac[..., 0] if dx else 1 - frac[..., 0]
            wy = frac[..., 1] if dy else 1 - frac[..., 1]
            inside = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            index = image + y.clamp(0, size - 1) * size + x.clamp(0, size - 1)
            flat.index_add_(0, index.reshape(-1), (weight * wx * wy * inside).reshape(-1))
    return flat.view(n, 1, size, size)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[n, 1, H, W]`` images, normalised to a unit 1-D integral."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.conv2d(images, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(out, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def _blobs(n: int, g: torch.Generator) -> torch.Tensor:
    """At most one soft filled ellipse per image (30% of images): ``[n, 1, 32, 32]``."""
    grid = torch.arange(CANVAS, dtype=torch.float32) + 0.5
    yy, xx = grid.view(1, -1, 1), grid.view(1, 1, -1)
    cx, cy = (_uniform((n, 1, 1), 6.0, CANVAS - 6.0, g) for _ in range(2))
    rx, ry = (_uniform((n, 1, 1), 1.5, 6.0, g) for _ in range(2))
    present = (torch.rand(n, 1, 1, generator=g) < 0.3).float()
    r = torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    edge = torch.minimum(rx, ry)
    return ((1.0 - r) * edge + 0.5).clamp(0.0, 1.0).mul(present).unsqueeze(1)


def generate_strokes(n: int, image_size: int, channels: int, g: torch.Generator) -> torch.Tensor:
    """Render ``n`` stroke images at 32x32 and downsample them (see the module docstring)."""
    points, weight = _stroke_points(n, g)
    density = _splat(points, weight, CANVAS)
    pen = torch.randint(0, len(_PEN_SIGMAS), (n,), generator=g)
    ink = torch.zeros_like(density)
    for i, sigma in enumerate(_PEN_SIGMAS):
        rows = torch.nonzero(pen == i).squeeze(1)
        if len(rows):
            ink[rows] = _gaussian_blur(density[rows], sigma) * (math.sqrt(2 * math.pi) * sigma)
    pressure = _uniform((n, 1, 1, 1), 0.7, 1.0, g)
    ink = torch.maximum((ink * 1.2).clamp(0.0, 1.0), _blobs(n, g)) * pressure
    ink = resize_images(ink, image_size)
    if channels == 1:
        return ink.contiguous()
    paper = _uniform((n, 3, 1, 1), 0.0, 1.0, g)
    colour = _uniform((n, 3, 1, 1), 0.0, 1.0, g)
    return (paper + ink * (colour - paper)).clamp(0.0, 1.0).contiguous()


def _leaf_sizes(n: int, g: torch.Generator) -> torch.Tensor:
    """Radii (fractions of the side) with p(r) ~ r^-3 on [0.03, 0.5] (inverse-CDF sampling)."""
    lo, hi = 0.03**-2, 0.5**-2
    u = torch.rand(n, _LEAVES, generator=g)
    return (lo - u * (lo - hi)) ** -0.5


def generate_dead_leaves(
    n: int, image_size: int, channels: int, g: torch.Generator
) -> torch.Tensor:
    """Paint ``n`` dead-leaves images at ``image_size`` (see the module docstring)."""
    s = image_size
    grid = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    yy, xx = grid.view(1, s, 1), grid.view(1, 1, s)
    radius = _leaf_sizes(n, g)
    centre = torch.rand(n, _LEAVES, 2, generator=g) * 1.2 - 0.1
    shape = torch.randint(0, 3, (n, _LEAVES), generator=g)
    theta = torch.rand(n, _LEAVES, generator=g) * math.pi
    aspect = torch.where(shape == 2, _uniform((n, _LEAVES), 0.3, 0.7, g), torch.ones(n, _LEAVES))
    colour = torch.rand(n, _LEAVES, 3, generator=g)
    canvas = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, s, s).clone()
    for i in range(_LEAVES):
        dx = xx - centre[:, i, 0].view(n, 1, 1)
        dy = yy - centre[:, i, 1].view(n, 1, 1)
        c, si = torch.cos(theta[:, i]).view(n, 1, 1), torch.sin(theta[:, i]).view(n, 1, 1)
        u, v = (c * dx + si * dy).abs(), (-si * dx + c * dy).abs()
        r = radius[:, i].view(n, 1, 1)
        box = torch.maximum(u - r, v - r * aspect[:, i].view(n, 1, 1))
        disc = torch.sqrt(dx * dx + dy * dy) - r
        dist = torch.where((shape[:, i] == 0).view(n, 1, 1), disc, box)
        alpha = (0.5 - dist * s).clamp(0.0, 1.0).unsqueeze(1)
        canvas += alpha * (colour[:, i].view(n, 3, 1, 1) - canvas)
    if channels == 3:
        return canvas.clamp(0.0, 1.0)
    luma = torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)
    return (canvas * luma).sum(dim=1, keepdim=True).clamp(0.0, 1.0)


FAMILIES: dict[str, Generator] = {
    "strokes": generate_strokes,
    "dead_leaves": generate_dead_leaves,
}
"""Registered families: name -> generator."""


def generate_synthetic(
    family: str, n: int, *, image_size: int, channels: int, seed: int
) -> ImageDataset:
    """Generate ``n`` unlabelled images of ``family``: float32 ``[n, C, S, S]`` in ``[0, 1]``.

    Parameters
    ----------
    family
        A key of :data:`FAMILIES` (``strokes`` or ``dead_leaves``).
    n
        Number of images, ``>= 1``.
    image_size
        Side ``S`` in pixels, 8..32.
    channels
        1 (grayscale) or 3 (RGB).
    seed
        Seed of the one ``torch.Generator`` that draws every random number: the same arguments
        give the same images.

    Raises
    ------
    ValueError
        For an unknown family (the message lists the valid names) or an out-of-range argument.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown synthetic family {family!r}; valid: {sorted(FAMILIES)}")
    if n < 1:
        raise ValueError(f"n={n} is invalid: generate at least 1 image")
    if not 8 <= image_size <= CANVAS:
        raise ValueError(f"image_size={image_size} is invalid: use 8..{CANVAS} pixels")
    if channels not in (1, 3):
        raise ValueError(f"channels={channels} is invalid: use 1 (grayscale) or 3 (RGB)")
    g = torch.Generator().manual_seed(seed)
    images = FAMILIES[family](n, image_size, channels, g).to(torch.float32).contiguous()
    return ImageDataset(images, None, f"synthetic:{family}(seed={seed})")
