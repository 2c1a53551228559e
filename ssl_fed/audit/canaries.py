"""Canaries for the one-run audit: white-box gradient canaries and black-box input canaries.

White-box (Steinke, Nasr & Jagielski, arXiv 2305.08846, §6 "white-box"): canary ``i`` is a
clipping unit whose gradient is ``scale · s_i · e_{j_i}``, a *Dirac* direction (one coordinate
``j_i`` of the trainable parameters, a secret random sign ``s_i``) with ``scale >= C``, so the
step clips it to exactly ``C`` along that direction. Distinct coordinates make the m directions
orthogonal, so canaries do not interfere with each other, and reading them costs m numbers per
step. The adversary (the server's view with one site) sees every released noisy sum and scores
canary ``i`` by the likelihood ratio of the Poisson-subsampled Gaussian mechanism the accountant
assumes, evaluated on ``<s_i e_{j_i}, noisy sum_t> / C`` over the steps ``t``.

Person units (``privacy.unit=person``): a canary is a *person*. White-box: the person's image
rows (each the same Dirac direction) are summed into one unit before the clip
(:meth:`DiracCanaries.rows`). Black-box: a canary person owns several out-of-distribution images
and is scored by their mean score (:func:`person_scores`).

Black-box: out-of-distribution images (procedural ``dead_leaves``, :mod:`ssl_fed.data.synthetic`)
appended to the site's data; the score is minus the rotation loss of the final model on the
canary's 4 rotations (members are fit better), as in the paper's input-space audit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssl_fed.data.views import rotate_four
from ssl_fed.tasks.base import PretextTask
from ssl_fed.tasks.rotation import rotation_terms


@dataclass(frozen=True)
class DiracCanaries:
    """m white-box canaries: one (parameter, flat index, sign) each, and the row scale."""

    names: tuple[str, ...]
    index: torch.Tensor
    sign: torch.Tensor
    scale: float

    @property
    def m(self) -> int:
        """Number of canaries."""
        return int(self.index.shape[0])

    def rows(
        self, shapes: dict[str, torch.Size], which: torch.Tensor, images: int = 1
    ) -> dict[str, torch.Tensor]:
        """Gradient rows ``{name: [k, *shape]}`` of the canaries ``which`` (positions in 0..m).

        ``images``: each canary is a *person* of that many images, each image's gradient row
        ``scale · s_i · e_{j_i}``; the person's rows are summed into its one unit (what
        ``privacy.unit=person`` does before the clip), so the step still clips it to C.
        """
        k = int(which.shape[0])
        out = {n: torch.zeros(k * images, *shape) for n, shape in shapes.items()}
        for row, i in enumerate(which.repeat_interleave(images).tolist()):
            flat = out[self.names[i]][row].view(-1)
            flat[int(self.index[i])] = self.scale * float(self.sign[i])
        return {n: r.view(k, images, *r.shape[1:]).sum(1) for n, r in out.items()}

    def read(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each canary's signed coordinate of the released vector ``grads``: ``[m]``."""
        values = [grads[n].reshape(-1)[int(j)] for n, j in zip(self.names, self.index, strict=True)]
        return torch.stack(values).detach().double().cpu() * self.sign.double()


def make_dirac_canaries(
    shapes: dict[str, torch.Size], m: int, *, scale: float, generator: torch.Generator
) -> DiracCanaries:
    """Draw ``m`` distinct coordinates uniformly over all trainable parameters, random signs.

    Raises
    ------
    ValueError
        When the trainable parameters have fewer than ``m`` coordinates.
    """
    names = list(shapes)
    sizes = torch.tensor([math.prod(shapes[n]) for n in names])
    total = int(sizes.sum())
    if m > total:
        raise ValueError(f"{m} canaries need {m} coordinates; the model trains only {total}")
    flat = torch.randperm(total, generator=generator)[:m]
    offsets = torch.cumsum(sizes, 0) - sizes
    which = torch.searchsorted(torch.cumsum(sizes, 0), flat, right=True)
    sign = torch.randint(0, 2, (m,), generator=generator) * 2 - 1
    return DiracCanaries(
        tuple(names[int(w)] for w in which), flat - offsets[which], sign.double(), scale
    )


def likelihood_ratio_scores(
    observed: torch.Tensor, *, sample_rate: float, noise_std: float
) -> torch.Tensor:
    """Log-likelihood ratio "canary in" vs "out" for each canary, summed over steps.

    ``observed`` is ``[T, m]``, each canary's coordinate of the released noisy sum in units of
    C. Under "in" a step shows ``N(1, s²)`` with probability q and ``N(0, s²)`` otherwise; under
    "out" always ``N(0, s²)``, with ``s = noise_std`` (σ times the sensitivity, as declared).
    Per step the ratio is ``log(1 - q + q·exp((x - 1/2) / s²))``; with ``s = 0`` (no noise
    declared) the score degenerates to the plain sum of ``observed``.
    """
    if noise_std <= 0.0:
        return observed.sum(dim=0)
    q = min(max(sample_rate, 1e-12), 1.0)
    z = (observed - 0.5) / noise_std**2
    if q >= 1.0:
        return z.sum(dim=0)
    stay = torch.full_like(z, math.log1p(-q))
    return torch.logaddexp(stay, math.log(q) + z).sum(dim=0)


def group_pair_scores(
    observed: torch.Tensor, *, sample_rate: float, noise_std: float
) -> torch.Tensor:
    """Scores of group canaries, the worst-case neighbour of a group-clipped step.

    In group mode one image can flip its group's clipped gradient from ``-C u`` to ``+C u``
    (sensitivity 2C). A group canary reproduces that change: each step its canary image is in
    and drawn (probability q), it adds two unit rows of ``+C u`` (each clipped like any unit), a
    shift of 2C; the group's own ``-C u`` is a constant the released sum carries either way and
    is left out. So "out" shows ``N(0, s²)`` and "in" ``q N(2, s²) + (1-q) N(0, s²)`` in units of
    C; with ``y = x / 2`` this is the unit canary's test at shift 1 and std ``s / 2``: the
    subsampled Gaussian at sensitivity 2C that the accountant assumes.
    """
    return likelihood_ratio_scores(
        observed / 2.0, sample_rate=sample_rate, noise_std=noise_std / 2.0
    )


def input_canaries(m: int, *, image_size: int, channels: int, seed: int) -> torch.Tensor:
    """``m`` out-of-distribution images ``[m, C, S, S]`` (procedural dead leaves)."""
    from ssl_fed.data.synthetic import generate_synthetic

    data = generate_synthetic("dead_leaves", m, image_size=image_size, channels=channels, seed=seed)
    return data.images


def person_input_canaries(
    m: int, images: int, *, image_size: int, channels: int, seed: int
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``m`` canary persons of ``images`` out-of-distribution images each, and their ids.

    Ids are ``canary-<i>`` (valid person ids, :mod:`ssl_fed.data.persons`); images
    ``[m * images, C, S, S]``, person ``i`` owning rows ``i*images .. (i+1)*images - 1``.
    """
    data = input_canaries(m * images, image_size=image_size, channels=channels, seed=seed)
    ids = tuple(f"canary-{i // images:06d}" for i in range(m * images))
    return data, ids


def person_scores(image_scores: torch.Tensor, images: int) -> torch.Tensor:
    """Score each canary person by the mean of its ``images`` images' scores: ``[m]``."""
    return image_scores.view(-1, images).mean(dim=1)


@torch.no_grad()
def rotation_loss_scores(task: PretextTask, images: torch.Tensor) -> torch.Tensor:
    """Minus each image's mean rotation cross-entropy on the final model: ``[m]``.

    The views are the 4 plain rotations (no augmentation), so the score is deterministic.
    """
    if "rotation" not in task.term_names():
        raise ValueError(
            f"the black-box audit scores the rotation loss, which task {task.cfg.name!r} does "
            "not train; audit task=rotation or task=joint, or use the white-box audit"
        )
    task.eval()
    param = next(task.parameters())
    views = rotate_four(images.to(param.dtype))
    units = views.unsqueeze(1)
    mask = torch.ones(units.shape[0], 1, dtype=param.dtype)
    return -rotation_terms(task, task.embed(units), mask).detach().double()
