"""Hydra config <-> Flower run_config: one translation, lossless."""

from __future__ import annotations

from ssl_fed.config import load_config
from ssl_fed.fed.runconfig import from_run_config, to_run_config


def test_round_trip_is_lossless() -> None:
    # Prepare: non-default values of every kind (int, float, bool, None, list, str with spaces)
    cfg = load_config(
        [
            "sim.rounds=3",
            "aggregation=plain",
            "privacy.target_epsilon=3",
            "eval.labels_per_class=[1,5]",
            "resume=true",
            "out='/tmp/a b'",
        ]
    )
    # Execute
    flat = to_run_config(cfg)
    back = from_run_config(flat)
    # Assert
    top = {"out", "resume", "overwrite", "state_dir", "run_id", "init"}
    assert all("." in k or k in top for k in flat)
    assert flat["state_dir"] == "null" and flat["eval.labels_per_class"] == "[1, 5]"
    assert back == cfg


def test_lists_of_dicts_survive_the_round_trip() -> None:
    # Prepare: the poisoning and drift lists, which JSON (quoted keys) could not carry to Hydra
    attack = "sim.attack=[{site: 1, kind: scale, strength: 2.5}, {site: 2, kind: lie}]"
    drift = "sim.drift=[{site: 2, round: 3, kind: rotate, strength: 1.0}]"
    cfg = load_config(["sim.num_sites=3", "sim.rounds=4", attack, drift])
    # Execute
    flat = to_run_config(cfg)
    back = from_run_config(flat)
    # Assert: Hydra's grammar (bare keys) and a lossless round trip, types kept
    assert flat["sim.attack"] == (
        '[{site: 1, kind: "scale", strength: 2.5}, {site: 2, kind: "lie"}]'
    )
    assert back == cfg
    assert back.sim.attack[0] == {"site": 1, "kind": "scale", "strength": 2.5}
    assert back.sim.drift[0]["round"] == 3 and back.sim.drift[0]["strength"] == 1.0


def test_a_json_list_in_a_run_config_is_accepted() -> None:
    # Prepare: what a user may write in --run-config / pyproject (JSON, quoted keys)
    flat = {"sim.num_sites": 3, "sim.attack": '[{"site": 2, "kind": "sign_flip"}]'}
    # Execute
    cfg = from_run_config(flat)
    # Assert
    assert cfg.sim.attack == [{"site": 2, "kind": "sign_flip"}]


def test_missing_keys_take_the_defaults() -> None:
    assert from_run_config({"sim.rounds": 4}) == load_config(["sim.rounds=4"])
