"""Public parameters of one distributed-DP round: γ, bits, sensitivities, noise shares, headroom.

Everything here is public and identical at the server and every site: the model size, the bits
``b`` of the modular sum, the clip ``C``, the sensitivity factor (1 for one clipped unit; 2 for
group-wise clipping, where one image changes its group's clipped gradient), σ, how many sites
must add noise (``min_noisy_sites``) and a public bound on the units summed in a round (from the
sizes the sites declare). The scale ``1/γ`` is the largest for which the noisy integer sum stays
inside the accept band ``|v| ≤ 2^(b-2)`` except with probability ``wrap_prob`` (a union bound
over the ``d'`` rotated coordinates of sub-Gaussian tails: ``k = √(2 ln(2 d' / wrap_prob))``
standard deviations; cf. Kairouz, Liu, Steinke, arXiv 2102.06387, §4.4, which uses k = 4).

Notes
-----
Sensitivity (integer units): adding or removing one unit changes the site's rounded sum by one
conditionally rounded vector of norm at most ``B = rounding_bound(C/γ, d')`` (or a difference
of two for group-wise clipping), so ``Δ2 = factor · B`` and ``Δ1 = factor · min(√d' B, B²)``.
Each site adds ``Sk(μ/m, μ/m)`` with ``μ = (σ Δ2)² / 2`` and ``m = min_noisy_sites``; any ``m``
honest survivors give at least ``Sk(μ, μ)``. The rounding inflation ``Δ2 / (factor · C/γ)``
tends to 1 as the bits grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ssl_fed.privacy.distributed.rotation import padded_dim
from ssl_fed.privacy.distributed.rounding import BETA, l1_bound, rounding_bound

WRAP_PROB = 1e-6
MAX_SHARE_MU = 1e18
"""Largest Poisson parameter of a share numpy's sampler takes (its limit is about 9.2e18)."""


@dataclass(frozen=True)
class DDPParams:
    """One round's public distributed-DP parameters (see the module docstring)."""

    dim: int
    bits: int
    clip: float
    sensitivity_factor: int
    noise_multiplier: float
    min_noisy_sites: int
    max_units: int
    scale: float
    beta: float = BETA
    wrap_prob: float = WRAP_PROB

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 62:
            raise ValueError(f"bits must be in [8, 62], got {self.bits}")
        if self.min_noisy_sites < 1 or self.max_units < 1 or self.dim < 1:
            raise ValueError("min_noisy_sites, max_units and dim must be >= 1")
        if not (self.scale > 0 and self.clip > 0 and self.noise_multiplier >= 0):
            raise ValueError("scale and clip must be > 0 and noise_multiplier >= 0")

    @property
    def padded(self) -> int:
        """Rotated length ``d'``."""
        return padded_dim(self.dim)

    @property
    def gamma(self) -> float:
        """Granularity ``γ = 1/scale``: one integer step in float units."""
        return 1.0 / self.scale

    @property
    def unit_bound(self) -> float:
        """L2 bound of one unit's conditionally rounded vector (integer units)."""
        return rounding_bound(self.clip * self.scale, self.padded, self.beta)

    @property
    def l2_sensitivity(self) -> float:
        """Δ2 of the integer sum (integer units)."""
        return self.sensitivity_factor * self.unit_bound

    @property
    def l1_sensitivity(self) -> float:
        """Δ1 of the integer sum (integer units)."""
        return self.sensitivity_factor * l1_bound(self.unit_bound, self.padded)

    @property
    def inflation(self) -> float:
        """Rounding inflation of the L2 sensitivity over the float one."""
        return self.unit_bound / (self.clip * self.scale)

    @property
    def mu_total(self) -> float:
        """Poisson parameter of the aggregate noise the accountant assumes (``m`` honest sites)."""
        return (self.noise_multiplier * self.l2_sensitivity) ** 2 / 2.0

    @property
    def mu_share(self) -> float:
        """Poisson parameter of one site's share."""
        return self.mu_total / self.min_noisy_sites

    def noise_std(self, num_sites: int) -> float:
        """Std of the aggregate noise per coordinate (float units) when ``num_sites`` add shares."""
        return math.sqrt(2.0 * self.mu_share * num_sites) / self.scale

    def sum_sd(self, num_sites: int) -> float:
        """Sub-Gaussian scale of one coordinate of the integer sum: noise, rounding, signal."""
        signal = (self.max_units * self.clip * self.scale) ** 2 / self.padded
        return math.sqrt(2.0 * self.mu_share * num_sites + self.max_units / 4.0 + signal)

    @property
    def k_required(self) -> float:
        """Standard deviations of headroom that keep all ``d'`` coordinates in the band."""
        return math.sqrt(2.0 * math.log(2.0 * self.padded / self.wrap_prob))

    @property
    def band(self) -> int:
        """Accept band ``2^(b-2)``: an unmasked coordinate beyond it means a wrap."""
        return 1 << (self.bits - 2)

    def wrap_margin_sd(self, num_sites: int) -> float:
        """Distance to the wrap point ``2^(b-1)`` in standard deviations of one coordinate."""
        return (1 << (self.bits - 1)) / self.sum_sd(num_sites)


def choose_scale(
    *,
    dim: int,
    bits: int,
    clip: float,
    sensitivity_factor: int,
    noise_multiplier: float,
    min_noisy_sites: int,
    max_units: int,
    num_sites: int,
) -> DDPParams:
    """Largest power-of-two scale whose noisy sum keeps ``k_required`` sd inside the band.

    The scale is also capped so that a site's share parameter stays samplable
    (:data:`MAX_SHARE_MU`); past about 32 bits more bits only buy headroom, not precision.

    Raises ``ValueError`` naming the fix when even the smallest useful scale does not fit.
    """

    def make(scale: float) -> DDPParams:
        return DDPParams(
            dim, bits, clip, sensitivity_factor, noise_multiplier, min_noisy_sites, max_units, scale
        )

    def fits(p: DDPParams) -> bool:
        return p.k_required * p.sum_sd(num_sites) <= p.band and p.mu_share <= MAX_SHARE_MU

    exp = math.floor(bits - 2 - math.log2(max(clip, 1e-300)))
    while exp > -60 and not fits(make(2.0**exp)):
        exp -= 1
    best = make(2.0**exp)
    if not fits(best) or best.clip * best.scale < 1.0:
        raise ValueError(
            f"privacy.ddp_bits={bits} is too small for {num_sites} sites, {max_units} units and "
            f"d={dim}: the sum would wrap or round every unit to nothing; use more bits"
        )
    return best
