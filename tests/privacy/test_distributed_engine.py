"""The distributed-noise engine: selected by the config, answers the budget query with its step."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_fed.config import load_config
from ssl_fed.privacy import skellam
from ssl_fed.privacy.distributed_engine import SkellamEngine
from ssl_fed.privacy.engine import build_engine, mechanism_name
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.train.local import schedule_for

pytestmark = pytest.mark.slow  # σ calibration with the Skellam accountant takes seconds
TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]
DDP = [*TINY, "privacy.noise=distributed", "data.public_size=64", "train.batch_size=16",
       "sim.num_sites=4", "sim.rounds=2"]  # fmt: skip


def _engine(tmp: Path, budget: float) -> SkellamEngine:
    cfg = load_config(DDP)
    ledger = PrivacyLedger(tmp, budget=budget, delta=cfg.privacy.delta)
    engine = build_engine(cfg, ledger, schedule_for(cfg, 80), n=80, run_id="r")
    assert isinstance(engine, SkellamEngine)
    engine.bind(1)
    return engine


def test_the_config_selects_skellam_only_for_distributed_noise():
    assert mechanism_name(load_config(DDP)) == "skellam"
    assert mechanism_name(load_config(TINY)) == "dpsgd"


def test_decide_prices_one_round_with_the_skellam_accountant(tmp_path: Path) -> None:
    # Prepare
    engine = _engine(tmp_path / "a", budget=8.0)
    pub = engine.public
    assert pub is not None and pub.plan.ddp is not None
    p = pub.plan.ddp
    one = skellam.epsilon_for_history(
        [
            skellam.SkellamStep(
                p.noise_multiplier, pub.sample_rate, 1, p.l2_sensitivity, p.l1_sensitivity
            )
        ],
        1e-5,
    )
    # Execute / Assert: affordable within 8, refused within a budget below one round's ε
    ok = engine.decide(1)
    assert ok.ok and f"{one:.3f}" in ok.reason
    assert not _engine(tmp_path / "b", budget=0.9 * one).decide(1).ok


def test_make_private_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="contribute"):
        _engine(tmp_path, 8.0).make_private(None, None, None, round=1)  # type: ignore[arg-type]
