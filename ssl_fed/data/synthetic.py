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

from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.loaders import resize_images

Generator = Callable[[int, int, int, torch.Generator], torch.Tensor]
"""A family: ``(n, image_size, channels, generator) -> float32 [n, channels, size, size]``."""

CANVAS = 32
"""Side of the canvas that ``strokes`` are drawn on before downsampling."""

_STROKES_MAX = 4
_POINTS_PER_STROKE = 48
_PEN_SIGMA = (0.8, 1.8)
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
    bezier = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    centre = _uniform((n, k, 1, 2), 10.0, CANVAS - 10.0, g)
    radii = _uniform((n, k, 1, 2), 3.0, 10.0, g)
    start = _uniform((n, k, 1, 1), 0.0, 2 * math.pi, g)
    sweep = _uniform((n, k, 1, 1), 0.5 * math.pi, 2 * math.pi, g)
    angle = start + sweep * t
    arc = centre + radii * torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
    kind = torch.randint(0, 3, (n, k, 1, 1), generator=g)
    points = torch.where(kind == 0, line, torch.where(kind == 1, bezier, arc))
    step = (points[:, :, 1:] - points[:, :, :-1]).norm(dim=-1)
    weight = torch.cat(
        [step[:, :, :1], 0.5 * (step[:, :, 1:] + step[:, :, :-1]), step[:, :, -1:]], 2
    )
    strokes = torch.randint(1, k + 1, (n, 1), generator=g)
    active = (torch.arange(k).view(1, k) < strokes).float().unsqueeze(-1)
    return points.reshape(n, k * t_n, 2), (weight * active).reshape(n, k * t_n)


def _splat(points: torch.Tensor, weight: torch.Tensor, size: int) -> torch.Tensor:
    """Add each weighted point bilinearly into its image's ``size x size`` grid: ``[n, s, s]``."""
    n = weight.shape[0]
    base = points.floor()
    frac = points - base
    corner = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]]).view(1, 1, 4, 2)
    xy = base.long().unsqueeze(2) + corner
    share = torch.where(corner == 1, frac.unsqueeze(2), 1 - frac.unsqueeze(2)).prod(dim=-1)
    inside = ((xy >= 0) & (xy < size)).all(dim=-1)
    xy = xy.clamp(0, size - 1)
    image = torch.arange(n).view(n, 1, 1) * size * size
    index = image + xy[..., 1] * size + xy[..., 0]
    values = weight.unsqueeze(-1) * share * inside
    flat = torch.bincount(index.reshape(-1), values.reshape(-1), minlength=n * size * size)
    return flat.to(torch.float32).view(n, size, size)


def _pen(density: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image ``[n, s, s]`` with its own Gaussian pen of std ``sigma [n]``.

    The separable blur is two batched matrix products with per-image Gaussian matrices, so pen
    width is continuous per image at the cost of one ``bmm``. The row kernel is normalised to a
    unit integral and the column kernel has peak 1: the centre of a long straight stroke (a unit
    line integral) then renders at exactly 1, whatever the pen width.
    """
    s = density.shape[-1]
    grid = torch.arange(s, dtype=torch.float32)
    d2 = (grid.view(1, s, 1) - grid.view(1, 1, s)) ** 2
    peak_one = torch.exp(-0.5 * d2 / sigma.view(-1, 1, 1) ** 2)
    unit = peak_one / (math.sqrt(2 * math.pi) * sigma.view(-1, 1, 1))
    return torch.bmm(torch.bmm(peak_one, density), unit)


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
    sigma = _uniform((n,), _PEN_SIGMA[0], _PEN_SIGMA[1], g)
    ink = _pen(_splat(points, weight, CANVAS), sigma).unsqueeze(1)
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


def _paint_window(
    canvas: torch.Tensor, rows: torch.Tensor, origin: torch.Tensor, side: int, leaf: torch.Tensor
) -> None:
    """Composite one leaf into a ``side x side`` window of the images ``rows`` (in place).

    ``canvas`` is ``[n, H, W, 3]`` (channels last, so one index moves a whole pixel) and padded
    by ``pad = leaf[0, 0]`` pixels; ``origin [m, 2]`` is each window's top-left (x, y) in padded
    pixels, and ``leaf [m, 11]`` packs pad, centre (x, y), radius, cos, sin, aspect, is-disc and
    colour (r, g, b), in unpadded pixels. Coverage is the signed distance to the shape's edge
    mapped to ``[0, 1]`` over one pixel: a 1-pixel anti-aliased edge.
    """
    pad, cx, cy, r, c, si, aspect, disc, *rgb = leaf.unbind(1)
    offsets = torch.arange(side)
    xs = origin[:, :1] + offsets
    ys = origin[:, 1:] + offsets
    dx = (xs - pad.view(-1, 1) + 0.5 - cx.view(-1, 1)).unsqueeze(1)
    dy = (ys - pad.view(-1, 1) + 0.5 - cy.view(-1, 1)).unsqueeze(2)
    c, si, r = c.view(-1, 1, 1), si.view(-1, 1, 1), r.view(-1, 1, 1)
    u, v = (c * dx + si * dy).abs(), (c * dy - si * dx).abs()
    box = torch.maximum(u - r, v - r * aspect.view(-1, 1, 1))
    dist = torch.where(disc.view(-1, 1, 1) > 0, torch.sqrt(dx * dx + dy * dy) - r, box)
    alpha = (0.5 - dist).clamp(0.0, 1.0)
    w = canvas.shape[2]
    index = (rows.view(-1, 1, 1) * canvas.shape[1] + ys.unsqueeze(2)) * w + xs.unsqueeze(1)
    pixels = canvas.view(-1, 3)
    window = pixels.index_select(0, index.reshape(-1)).view(-1, side, side, 3)
    painted = window + alpha.unsqueeze(-1) * (torch.stack(rgb, 1).view(-1, 1, 1, 3) - window)
    pixels.index_copy_(0, index.reshape(-1), painted.view(-1, 3))


def generate_dead_leaves(
    n: int, image_size: int, channels: int, g: torch.Generator
) -> torch.Tensor:
    """Paint ``n`` dead-leaves images at ``image_size`` (see the module docstring).

    Leaves are painted back to front, one leaf index at a time for all images at once. Most
    leaves are small (power-law sizes), so a leaf whose extent fits a small window is painted
    into that window only (a padded canvas keeps every window in bounds); the few large ones are
    painted over the whole image. This keeps 32x32 generation several times cheaper than
    painting every leaf everywhere, and the result is the same.
    """
    s = image_size
    radius = _leaf_sizes(n, g) * s
    centre = (torch.rand(n, _LEAVES, 2, generator=g) * 1.2 - 0.1) * s
    shape = torch.randint(0, 3, (n, _LEAVES), generator=g)
    theta = torch.rand(n, _LEAVES, generator=g) * math.pi
    aspect = torch.where(shape == 2, _uniform((n, _LEAVES), 0.3, 0.7, g), torch.ones(n, _LEAVES))
    colour = torch.rand(n, _LEAVES, 3, generator=g)
    side = 2 * math.ceil(0.1 * s + 1) + 2
    pad = side
    canvas = torch.rand(n, 1, 1, 3, generator=g).expand(n, s + 2 * pad, s + 2 * pad, 3).clone()
    small = (radius * math.sqrt(2) + 1 <= side // 2 - 1) & (2 * side <= s)
    full_origin = torch.full((n, 2), pad)
    local_origin = centre.floor().long() - side // 2 + pad
    for i in range(_LEAVES):
        leaf = torch.stack(
            [
                torch.full((n,), float(pad)),
                centre[:, i, 0],
                centre[:, i, 1],
                radius[:, i],
                torch.cos(theta[:, i]),
                torch.sin(theta[:, i]),
                aspect[:, i],
                (shape[:, i] == 0).float(),
                *colour[:, i].unbind(1),
            ],
            dim=1,
        )
        for rows, origin, width in (
            (torch.nonzero(small[:, i]).squeeze(1), local_origin[:, i], side),
            (torch.nonzero(~small[:, i]).squeeze(1), full_origin, s),
        ):
            if len(rows):
                _paint_window(canvas, rows, origin[rows], width, leaf[rows])
    canvas = canvas[:, pad : pad + s, pad : pad + s].permute(0, 3, 1, 2).clamp(0.0, 1.0)
    if channels == 3:
        return canvas.contiguous()
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
