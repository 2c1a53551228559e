"""σ is planned for every round of a federation, whichever entry point composed the config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ssl_fed.config import RootConfig, load_config
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed.runconfig import from_run_config
from ssl_fed.fed.simulation import prepare_config
from ssl_fed.privacy.accounting import calibrate_noise
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.site.node import site_config, site_info
from ssl_fed.site.rounds import site_engine
from tests.helpers import images

ROOT = Path(__file__).resolve().parents[2]
NODE = {"partition-id": 0, "num-partitions": 2, "public-size": 64}


def simulate_config(overrides: list[str]) -> RootConfig:
    """The config ``ssl-fed simulate OVERRIDES`` hands its apps (before Flower starts)."""
    return prepare_config(load_config(overrides))


def flwr_run_config(overrides: dict[str, int]) -> RootConfig:
    """The config ``flwr run . --run-config`` hands its apps: the app's table plus overrides."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    return from_run_config({**table, **overrides})


def test_both_entry_points_give_a_site_the_same_plan_for_sim_rounds_16() -> None:
    # Prepare: the same request through both entry points
    configs = [simulate_config(["sim.rounds=16"]), flwr_run_config({"sim.rounds": 16})]

    # Execute: what a simulated site makes of each
    planned = [site_config(c, site_info(c, NODE)).train.max_rounds for c in configs]

    # Assert
    assert planned == [16, 16]


@pytest.mark.slow
def test_both_entry_points_calibrate_the_same_sigma_for_every_round(tmp_path: Path) -> None:
    # Prepare: a site of 64 images (public size 64) under each entry point's config
    overrides = ["sim.rounds=16", "train.batch_size=16", "train.local_epochs=1"]
    configs = [
        simulate_config(overrides),
        flwr_run_config({"sim.rounds": 16, "train.batch_size": 16, "train.local_epochs": 1}),
    ]
    data = ImageDataset(images(64), None, "site")

    # Execute
    sigmas = []
    for i, cfg in enumerate(configs):
        info = site_info(cfg, {**NODE, "state-dir": str(tmp_path / str(i))})
        engine = site_engine(site_config(cfg, info), info, data, "run")
        sigmas.append(engine.noise_multiplier())

    # Assert: one σ, calibrated for 16 trainings of 4 steps at q = 1/4 (independent of the site)
    pr = configs[0].privacy
    expected = calibrate_noise(
        target_epsilon=pr.target_epsilon, delta=pr.delta, sample_rate=0.25, steps=16 * 4
    )
    assert sigmas == [expected, expected]
    assert PrivacyLedger(tmp_path / "0", budget=pr.target_epsilon, delta=pr.delta).entries == []
