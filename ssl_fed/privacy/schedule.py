"""The public constants of one local training: Poisson sample rate and step count.

They are what the accountant records for a training (with σ), so they must be public: computed
from the size the site operator declares (``data.public_size``), never from the exact n when it
is avoidable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """Sample rate and step count of one local training.

    ``size_is_public`` is False when no public size was declared and the exact n was used: then
    q, the steps and every ε computed from them are functions of private data and must stay at
    the site.
    """

    sample_rate: float
    steps_per_epoch: int
    epochs: int
    size_is_public: bool = True

    @property
    def steps(self) -> int:
        """Total steps of the training."""
        return self.steps_per_epoch * self.epochs


def make_schedule(n: int, batch_size: int, epochs: int, public_size: int | None) -> Schedule:
    """Poisson rate ``q = min(1, B/N)`` and ``ceil(N/B)`` steps per epoch, N the public size.

    ``N = data.public_size``, the size the site operator declares (e.g. n rounded down to a
    bucket), so that q, the step count, σ and ε are public. Any N keeps the guarantee: each image
    is included with probability exactly q, which is what the accountant records; N only sets
    how many images a batch holds on average (``q·n``). Without a declared N the exact n is
    used, with a warning, and the schedule is marked private (ε then never leaves the site).
    """
    if n < 1:
        raise ValueError("the site has no images; point data.path at a non-empty dataset")
    size = public_size if public_size is not None else n
    q = min(1.0, batch_size / size)
    return Schedule(q, max(1, math.ceil(size / batch_size)), epochs, public_size is not None)
