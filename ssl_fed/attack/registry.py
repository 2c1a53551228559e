"""The attack registry: ``sim.attack`` entries, what the attacker knows, and the one dispatch.

``sim.attack=[{site: 2, kind: lie}, {site: 3, kind: scale, strength: 10}]`` makes sites 2 and 3
malicious. Every kind maps (the site's honest delta, :class:`AttackerView`) to the delta it
submits; :data:`KINDS` is the single list of kinds, their paper and what ``strength`` means.

Notes
-----
Threat model (docs/poisoning.md): a malicious site controls its own input, so it replaces its
delta *before* its own SecAgg masking; it cannot see or change other sites' inputs. The
sites listed in ``sim.attack`` collude: LIE and min-max/min-sum estimate the honest
distribution from the colluders' own honest deltas (:attr:`AttackerView.known`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.attack import lie, minmax, replacement, simple
from ssl_fed.config import ConfigError

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class AttackSpec:
    """One malicious site: its label, the attack kind and its strength (``None``: the default)."""

    site: int
    kind: str
    strength: float | None = None


@dataclass(frozen=True)
class AttackerView:
    """What a malicious site knows when it submits in round ``round``.

    ``own`` is its honest delta (flat); ``known`` the honest deltas of the colluding sites it
    has (``own`` included); ``num_sites`` the sites per round, ``num_attackers`` the colluders.
    """

    own: Vector
    known: list[Vector]
    round: int
    num_sites: int
    num_attackers: int
    seed: int = 0


@dataclass(frozen=True)
class Kind:
    """An attack kind: the function, the paper, what ``strength`` means and its default."""

    run: Callable[[AttackerView, float | None], Vector]
    paper: str
    strength: str
    default: float | None


def _scale(v: AttackerView, s: float | None) -> Vector:
    return simple.scale(v.own, 10.0 if s is None else s)


def _sign_flip(v: AttackerView, s: float | None) -> Vector:
    return simple.sign_flip(v.own, 1.0 if s is None else s)


def _gaussian(v: AttackerView, s: float | None) -> Vector:
    return simple.gaussian(v.own, 0.1 if s is None else s, seed=v.seed * 1_000_003 + v.round)


def _lie(v: AttackerView, s: float | None) -> Vector:
    return lie.lie(v.known, lie.lie_z(v.num_sites, v.num_attackers) if s is None else s)


def _min_max(v: AttackerView, s: float | None) -> Vector:
    return minmax.min_max(v.known)


def _min_sum(v: AttackerView, s: float | None) -> Vector:
    return minmax.min_sum(v.known)


def _override(v: AttackerView, s: float | None) -> Vector:
    return replacement.mean_override(v.known, v.num_sites, v.num_attackers, 0.4 if s is None else s)


def _backdoor(v: AttackerView, s: float | None) -> Vector:
    return replacement.model_replacement(v.own, float(v.num_sites) if s is None else s)


KINDS: dict[str, Kind] = {
    "scale": Kind(_scale, "Fang et al. 2020", "factor on the honest delta", 10.0),
    "sign_flip": Kind(_sign_flip, "Fang et al. 2020", "factor on -delta", 1.0),
    "gaussian": Kind(_gaussian, "Blanchard et al. 2017", "std of the N(0, s^2) update", 0.1),
    "lie": Kind(_lie, "Baruch et al. NeurIPS 2019", "z (default: the paper's z_max)", None),
    "min_max": Kind(_min_max, "Shejwalkar & Houmansadr NDSS 2021", "unused (γ solved)", None),
    "min_sum": Kind(_min_sum, "Shejwalkar & Houmansadr NDSS 2021", "unused (γ solved)", None),
    "backdoor": Kind(
        _backdoor, "Bagdasaryan et al. AISTATS 2020", "boost γ (default: n sites)", None
    ),
    "override": Kind(
        _override, "Bagdasaryan et al. 2020 (per coordinate)", "target |mean| (float)", 0.4
    ),
}
SOLVED = frozenset({"min_max", "min_sum"})
"""Kinds whose magnitude the attack itself optimizes: a ``strength`` would be ignored."""


def apply_attack(spec: AttackSpec, view: AttackerView) -> Vector:
    """Return the flat delta the malicious site submits (see :data:`KINDS`)."""
    return KINDS[spec.kind].run(view, spec.strength)


def parse_attacks(raw: list[Any], num_sites: int) -> list[AttackSpec]:
    """Parse and check ``sim.attack``; raise :class:`ConfigError` naming the bad entry."""
    specs: list[AttackSpec] = []
    for i, entry in enumerate(raw):
        name = f"sim.attack[{i}]"
        if not isinstance(entry, dict) or not {"site", "kind"} <= set(entry):
            raise ConfigError(f"{name}={entry!r} is invalid: use {{site: ID, kind: KIND}}")
        if set(entry) - {"site", "kind", "strength"}:
            extra = sorted(set(entry) - {"site", "kind", "strength"})
            raise ConfigError(f"{name} has unknown keys {extra}: use site, kind, strength")
        kind, site, strength = entry["kind"], entry["site"], entry.get("strength")
        if kind not in KINDS:
            raise ConfigError(f"{name}.kind={kind!r} is invalid: use one of {', '.join(KINDS)}")
        if not isinstance(site, int) or not 0 <= site < num_sites:
            raise ConfigError(f"{name}.site={site!r} is invalid: use 0..{num_sites - 1}")
        if strength is not None and (kind in SOLVED or not isinstance(strength, int | float)):
            raise ConfigError(
                f"{name}.strength={strength!r} is invalid: {kind} takes "
                f"{'no strength' if kind in SOLVED else 'a number'} ({KINDS[kind].strength})"
            )
        if any(s.site == site for s in specs):
            raise ConfigError(f"{name}.site={site} is listed twice: one attack per site")
        specs.append(AttackSpec(site, str(kind), None if strength is None else float(strength)))
    return specs


def flatten(arrays: list[NDArray[Any]]) -> Vector:
    """Concatenate the update arrays into one float64 vector."""
    if not arrays:
        return np.zeros(0, np.float64)
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


def unflatten(flat: Vector, like: list[NDArray[Any]]) -> list[NDArray[np.float32]]:
    """Cut ``flat`` back into float32 arrays of ``like``'s shapes."""
    out: list[NDArray[np.float32]] = []
    start = 0
    for a in like:
        size = int(np.size(a))
        out.append(np.asarray(flat[start : start + size], np.float32).reshape(np.shape(a)))
        start += size
    return out
