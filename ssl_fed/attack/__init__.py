"""Poisoning attacks from the literature, as pure functions (the suite: docs/poisoning.md).

Each maps a malicious site's honest delta and what it knows to the delta it submits; the
simulation applies them through one hook (:mod:`ssl_fed.attack.hook`).
"""

from ssl_fed.attack.registry import (
    KINDS,
    AttackerView,
    AttackSpec,
    apply_attack,
    flatten,
    parse_attacks,
    unflatten,
)

__all__ = [
    "KINDS",
    "AttackSpec",
    "AttackerView",
    "apply_attack",
    "flatten",
    "parse_attacks",
    "unflatten",
]
