"""Simulation audit mode: canaries at one site, the server sees only each round's aggregate.

Three sites of 24 tiny images, the real site round and the real SecAgg+ in-process; every
secret draw (coins, Poisson sampling, noise) is made reproducible by patching ``secrets``.
"""

import itertools
import secrets

import numpy as np
import pytest
import torch

import ssl_fed.privacy.distributed.codec as codec
from ssl_fed.audit.simulation import audit_simulation
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy.dpsgd import DPSGDStep
from ssl_fed.privacy.engine import DPSGDEngine
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.site import node
from tests.helpers import images


def config(noise="local", rounds=2):
    cfg = RootConfig()
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    cfg.encoder.proj_hidden, cfg.encoder.proj_dim = 16, 8
    cfg.task.name, cfg.data.image_size, cfg.data.channels = "rotation", 8, 1
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.optimizer = 4, 1, "sgd"
    cfg.train.progress, cfg.privacy.grad_method = False, "hooks"
    cfg.privacy.noise, cfg.privacy.target_epsilon = noise, 1.0
    cfg.sim.num_sites, cfg.sim.rounds = 3, rounds
    if noise == "distributed":  # σ calibrated by the Skellam accountant to ε = 1
        cfg.data.public_size = 24
    else:  # σ fixed (ε ≈ 1.2, read from the ledger): calibrating at every site is slow
        cfg.privacy.noise_multiplier, cfg.privacy.target_epsilon = 2.5, 2.0
    return cfg


@pytest.fixture
def sites(monkeypatch):
    """Three sites of 24 tiny images; every secret draw made reproducible for the test."""
    data = [ImageDataset(images(24, seed=i), None, f"site{i}") for i in range(3)]
    monkeypatch.setattr(node, "site_data", lambda cfg, info: data[info.partition_id])
    counter = itertools.count(1)
    monkeypatch.setattr(secrets, "randbits", lambda k: next(counter) % (1 << k))
    monkeypatch.setattr(secrets, "token_bytes", lambda n: next(counter).to_bytes(n, "little"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster on a shared machine
    yield
    torch.set_num_threads(threads)


def audit(tmp_path, cfg, m=200, kind="white-box"):
    return audit_simulation(cfg, kind=kind, canaries=m, beta=0.05, out=tmp_path, run_id="sim")


def ledger(tmp_path, site, budget=2.0):
    return PrivacyLedger(tmp_path / "sites" / f"site_{site}", budget=budget, delta=1e-5)


@pytest.mark.slow
def test_the_correct_mechanism_passes_and_canaries_are_charged_as_units(tmp_path, sites):
    # Execute
    result = audit(tmp_path, config())

    # Assert: ε_lower <= the canary site's ledger ε; that site's ledger holds exactly what a
    # site of the same declared size without canaries holds (q = 4/24, 6 steps, σ = 2.5)
    assert result.outcome.epsilon_lower <= result.epsilon and not result.violation
    canary, plain = ledger(tmp_path, 0), ledger(tmp_path, 1)
    assert [e.step for e in canary.entries] == [e.step for e in plain.entries]
    assert canary.entries[0].step == pytest.approx((2.5, 4 / 24, 6))
    assert result.epsilon == pytest.approx(plain.epsilon())
    assert result.sample_rate == pytest.approx(4 / 24) and result.steps == 12


@pytest.mark.slow
def test_noise_switched_off_is_flagged_from_the_aggregate(tmp_path, sites, monkeypatch):
    # Prepare: the bug: every site's step adds no noise while its ledger records σ = 2.5
    make_private = DPSGDEngine.make_private

    def no_noise(self, *args, **kwargs):
        step = make_private(self, *args, **kwargs)
        assert isinstance(step, DPSGDStep)
        step.optimizer.noise_multiplier = 0.0
        return step

    monkeypatch.setattr(DPSGDEngine, "make_private", no_noise)

    # Execute
    result = audit(tmp_path, config())

    # Assert: the server's view alone proves more than the claimed ε ≈ 1.2
    assert result.violation and result.outcome.epsilon_lower > result.epsilon


@pytest.mark.slow
def test_distributed_noise_passes_the_audit(tmp_path, sites):
    # Execute
    result = audit(tmp_path, config("distributed", rounds=3))

    # Assert: one DP-FedSGD step per round, ε from the Skellam ledger entries
    assert result.outcome.epsilon_lower <= result.epsilon <= 1.0 and not result.violation
    assert result.steps == 3 and len(ledger(tmp_path, 0, budget=1.0).entries) == 3


@pytest.mark.slow
def test_distributed_shares_without_noise_are_flagged(tmp_path, sites, monkeypatch):
    # Prepare: the bug: each site's Skellam share is zero while the ledger records σ
    monkeypatch.setattr(codec, "noise_share", lambda mu, size: np.zeros(size, np.int64))

    # Execute
    result = audit(tmp_path, config("distributed", rounds=3))

    # Assert: the decoded sums alone prove more than the claimed ε ≈ 1
    assert result.violation and result.outcome.epsilon_lower > result.epsilon


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "black-box"}, "--kind white-box"),
        ({"unit": "person"}, "--mode local"),
        ({"sites": 2}, "at least 3 sites"),
    ],
)
def test_unsupported_simulation_audits_are_refused_before_training(tmp_path, change, words):
    # Prepare
    cfg = config()
    cfg.privacy.unit = change.get("unit", "image")
    cfg.sim.num_sites = change.get("sites", 3)

    # Execute / Assert: one error naming the fix; no site state written
    with pytest.raises(ConfigError, match=words):
        audit(tmp_path, cfg, kind=change.get("kind", "white-box"))
    assert not (tmp_path / "sites").exists()
