"""A site's distributed-noise round: ledger charged first with the mechanism's terms."""

import numpy as np
import pytest

from ssl_fed.config import TaskConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.privacy import skellam as sk
from ssl_fed.privacy.distributed.params import choose_scale
from ssl_fed.privacy.ledger import BudgetExceededError, PrivacyLedger
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd import trainable_dim
from ssl_fed.train.fedsgd_site import contribute, ledger_terms, round_metrics
from ssl_fed.train.randomness import UnitStreams, unit_ids
from tests.helpers import images, tiny_task


def _setup(sigma: float):
    task = tiny_task("joint").float()
    data = ImageDataset(images(40), None, "test")
    units = plan_units(task, TaskConfig(name="joint", temperature=0.5), 8)
    params = choose_scale(
        dim=trainable_dim(task), bits=32, clip=1.0, sensitivity_factor=2,
        noise_multiplier=sigma, min_noisy_sites=3, max_units=400, num_sites=5,
    )  # fmt: skip
    return task, data, units, UnitStreams(b"k" * 32, unit_ids(data.images)), params


def test_contribution_charges_a_skellam_entry_and_returns_the_encoded_vector(tmp_path):
    task, data, units, streams, params = _setup(1.5)
    ledger = PrivacyLedger(tmp_path / "s", budget=20.0, delta=1e-5)

    vec = contribute(
        task, data, units, streams, ledger=ledger, run_id="r", rnd=1, sample_rate=0.2,
        params=params, seed=3,
    )  # fmt: skip

    assert vec.shape == (params.padded,) and vec.dtype == np.int64
    (entry,) = ledger.entries
    assert entry.mechanism == "skellam" and entry.ddp == ledger_terms(params)
    assert entry.sensitivity == 2.0 and entry.steps == 1 and entry.sample_rate == 0.2
    step = sk.SkellamStep(1.5, 0.2, 1, params.l2_sensitivity, params.l1_sensitivity)
    assert ledger.epsilon() == pytest.approx(sk.epsilon_for_history([step], 1e-5))


def test_an_unaffordable_round_is_refused_before_anything_is_computed(tmp_path):
    task, data, units, streams, params = _setup(0.2)
    ledger = PrivacyLedger(tmp_path / "s", budget=0.5, delta=1e-5)
    with pytest.raises(BudgetExceededError):
        contribute(
            task, data, units, streams, ledger=ledger, run_id="r", rnd=1, sample_rate=0.5,
            params=params, seed=3,
        )  # fmt: skip
    assert len(ledger.entries) == 0


def test_round_metrics_name_the_noise_bits_and_headroom():
    *_, params = _setup(1.0)
    m = round_metrics(params, survivors=5)
    assert set(m) >= {"privacy/noise_std_aggregate", "secagg/bits", "secagg/wrap_margin_sd"}
    assert m["privacy/noise_std_aggregate"] == pytest.approx(params.noise_std(5))
    assert m["secagg/bits"] == 32.0
