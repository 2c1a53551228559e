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


def test_missing_keys_take_the_defaults() -> None:
    assert from_run_config({"sim.rounds": 4}) == load_config(["sim.rounds=4"])
