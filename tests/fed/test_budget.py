"""A site answers the budget query from its own ledger."""

from __future__ import annotations

from pathlib import Path

from ssl_fed.config import load_config
from ssl_fed.fed.budget import can_train
from ssl_fed.privacy.ledger import PrivacyLedger


def _ledger(tmp_path: Path) -> PrivacyLedger:
    return PrivacyLedger(tmp_path, budget=8.0, delta=1e-5)


def test_fresh_site_can_train(tmp_path: Path) -> None:
    assert can_train(load_config(["train.max_rounds=4"]), _ledger(tmp_path), 120, "r", 1)


def test_exhausted_site_declines(tmp_path: Path) -> None:
    # Prepare: an earlier run (with a larger budget then) spent more than 8
    spent = PrivacyLedger(tmp_path, budget=1000.0, delta=1e-5)
    spent.charge(
        run_id="old", round=1, noise_multiplier=0.5, sample_rate=1.0, steps=40, sensitivity=1.0
    )
    # Execute / Assert
    assert not can_train(load_config(), _ledger(tmp_path), 120, "r", 1)


def test_round_already_charged_is_declined(tmp_path: Path) -> None:
    # Prepare: round 2 of run r was charged (then the run was killed before it finished)
    ledger = _ledger(tmp_path)
    ledger.charge(
        run_id="r", round=2, noise_multiplier=5.0, sample_rate=0.5, steps=2, sensitivity=1.0
    )
    cfg = load_config(["train.max_rounds=4"])
    # Execute / Assert: round 2 is not charged twice; round 3 is fine
    assert not can_train(cfg, ledger, 120, "r", 2)
    assert can_train(cfg, ledger, 120, "r", 3)


def test_privacy_off_always_trains(tmp_path: Path) -> None:
    assert can_train(load_config(["privacy=off"]), None, 120, "r", 1)
