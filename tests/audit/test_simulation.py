"""Simulation audit mode: canaries at one site, the server sees only each round's aggregate."""

import itertools
import secrets

import numpy as np
import pytest

import ssl_fed.privacy.distributed.codec as codec
from ssl_fed.audit.simulation import audit_simulation
from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.dpsgd import DPSGDStep
from ssl_fed.privacy.engine import DPSGDEngine
from ssl_fed.site import node
from tests.helpers import images

pytestmark = pytest.mark.slow


def config(noise="local", epsilon=1.0, rounds=2):
    cfg = RootConfig()
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    cfg.encoder.proj_hidden, cfg.encoder.proj_dim = 16, 8
    cfg.task.name, cfg.data.image_size, cfg.data.channels = "rotation", 8, 1
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.optimizer = 8, 1, "sgd"
    cfg.train.progress = False
    cfg.privacy.target_epsilon, cfg.privacy.grad_method = epsilon, "hooks"
    cfg.privacy.noise = noise
    cfg.sim.num_sites, cfg.sim.rounds = 3, rounds
    if noise == "distributed":
        cfg.data.public_size = 24
    return cfg


@pytest.fixture
def sites(monkeypatch):
    """Three sites of 24 tiny images; every secret draw made reproducible for the test."""
    data = [ImageDataset(images(24, seed=i), None, f"site{i}") for i in range(3)]
    monkeypatch.setattr(node, "site_data", lambda cfg, info: data[info.partition_id])
    counter = itertools.count(1)
    monkeypatch.setattr(secrets, "randbits", lambda k: next(counter) % (1 << k))
    monkeypatch.setattr(secrets, "token_bytes", lambda n: next(counter).to_bytes(n, "little"))


def audit(tmp_path, cfg, m=200):
    return audit_simulation(
        cfg, kind="white-box", canaries=m, beta=0.05, out=tmp_path, run_id="sim"
    )


def test_the_correct_mechanism_passes_the_simulation_audit(tmp_path, sites):
    result = audit(tmp_path, config())
    print(result)
    assert result.outcome.epsilon_lower <= result.epsilon <= 1.0
    assert not result.violation


def test_noise_switched_off_is_flagged_from_the_aggregate(tmp_path, sites, monkeypatch):
    make_private = DPSGDEngine.make_private

    def no_noise(self, *args, **kwargs):
        step = make_private(self, *args, **kwargs)
        assert isinstance(step, DPSGDStep)
        step.optimizer.noise_multiplier = 0.0
        return step

    monkeypatch.setattr(DPSGDEngine, "make_private", no_noise)
    result = audit(tmp_path, config())
    print(result)
    assert result.violation and result.outcome.epsilon_lower > result.epsilon


def test_distributed_noise_passes(tmp_path, sites):
    result = audit(tmp_path, config("distributed", rounds=3))
    print(result)
    assert result.outcome.epsilon_lower <= result.epsilon
    assert not result.violation


def test_distributed_shares_without_noise_are_flagged(tmp_path, sites, monkeypatch):
    monkeypatch.setattr(codec, "noise_share", lambda mu, size: np.zeros(size, np.int64))
    result = audit(tmp_path, config("distributed", rounds=3))
    print(result)
    assert result.violation
