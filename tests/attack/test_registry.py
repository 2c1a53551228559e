"""``sim.attack`` parsing and the registry's dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_fed.attack import (
    KINDS,
    AttackerView,
    AttackSpec,
    apply_attack,
    flatten,
    parse_attacks,
    unflatten,
)
from ssl_fed.config import ConfigError, load_config


def test_parse_keeps_site_kind_and_strength():
    # Execute
    specs = parse_attacks(
        [{"site": 2, "kind": "scale", "strength": 4}, {"site": 0, "kind": "lie"}], 5
    )

    # Assert
    assert specs == [AttackSpec(2, "scale", 4.0), AttackSpec(0, "lie", None)]


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ({"site": 9, "kind": "lie"}, "sim.attack[0].site"),
        ({"site": 1, "kind": "nope"}, "sim.attack[0].kind"),
        ({"site": 1, "kind": "min_max", "strength": 2}, "sim.attack[0].strength"),
        ({"site": 1, "kind": "scale", "strength": "x"}, "sim.attack[0].strength"),
        ({"site": 1}, "sim.attack[0]"),
        ({"site": 1, "kind": "lie", "power": 1}, "unknown keys"),
    ],
)
def test_bad_entries_name_the_field(entry, names):
    # Execute / Assert
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        parse_attacks([entry], 5)


def test_the_config_loader_validates_sim_attack():
    # Execute / Assert
    with pytest.raises(ConfigError, match=r"sim.attack\[1\].site=1 is listed twice"):
        load_config(["sim.attack=[{site: 1, kind: lie}, {site: 1, kind: scale}]"])
    assert load_config(["sim.attack=[{site: 1, kind: gaussian}]"]).sim.attack[0]["site"] == 1


def test_dispatch_uses_the_view_and_the_defaults():
    # Prepare
    own = np.array([0.5, -0.5])
    view = AttackerView(own, [own], round=3, num_sites=4, num_attackers=1)

    # Execute / Assert: backdoor's gamma defaults to the sites per round, scale's to 10
    assert apply_attack(AttackSpec(0, "backdoor"), view).tolist() == [2.0, -2.0]
    assert apply_attack(AttackSpec(0, "scale"), view).tolist() == [5.0, -5.0]
    assert apply_attack(AttackSpec(0, "scale", 2.0), view).tolist() == [1.0, -1.0]
    assert set(KINDS) >= {"scale", "sign_flip", "gaussian", "lie", "min_max", "backdoor"}


def test_flatten_and_unflatten_round_trip():
    # Prepare
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7.0], np.float32)]

    # Execute
    back = unflatten(flatten(arrays), arrays)

    # Assert
    assert [a.shape for a in back] == [(2, 3), (1,)]
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back, strict=True))
