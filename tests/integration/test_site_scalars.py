"""What leaves a site: for D and D ∪ {x}, every scalar a site sends is identical (or not sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flwr.app import Context, RecordDict

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.fed import site as st
from ssl_fed.fed.guard import allowed_fit_metrics
from ssl_fed.models import build_model
from ssl_fed.site import node
from tests.helpers import images


def tiny_config(public_size: int | None) -> RootConfig:
    cfg = RootConfig()
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    cfg.encoder.proj_hidden, cfg.encoder.proj_dim = 16, 8
    cfg.train.batch_size, cfg.train.local_epochs, cfg.train.max_rounds = 8, 1, 2
    cfg.task.name, cfg.data.public_size = "rotation", public_size
    cfg.data.image_size, cfg.data.channels = 8, 1
    cfg.privacy.noise_multiplier = 1.0
    return cfg


def site_reply(monkeypatch, state: Path, cfg: RootConfig, data: ImageDataset):
    """One deployed-site round on ``data``: (budget answer, scalars sent, site-local record)."""
    monkeypatch.setattr(node, "site_data", lambda cfg, info: data)
    info = st.site_info(cfg, {"data-path": "unused.npz", "state-dir": str(state)})
    received = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    can = st.answer_budget_query(cfg, info, "run", 1)
    _, scalars = st.train_round(cfg, info, received, ctx, "run", 1)
    record = [json.loads(x) for x in (state / st.SITE_METRICS_FILE).read_text().splitlines()]
    return can, scalars, record


@pytest.mark.slow
def test_every_scalar_a_site_sends_is_the_same_for_d_and_d_plus_one_image(monkeypatch, tmp_path):
    # Prepare: D (20 images) and D plus one image, one declared public size
    cfg = tiny_config(public_size=16)
    d = ImageDataset(images(20), None, "d")
    d_plus = ImageDataset(torch.cat([images(20), images(1, seed=9)]), None, "d+x")

    # Execute
    first = site_reply(monkeypatch, tmp_path / "a", cfg, d)
    second = site_reply(monkeypatch, tmp_path / "b", cfg, d_plus)

    # Assert: the budget answer and every sent scalar are equal; no loss is sent; the losses
    # are in the site's own record
    assert first[0] == second[0] is True
    assert first[1] == second[1]
    assert set(first[1]) == {"epsilon", "epsilon-remaining"} <= allowed_fit_metrics()
    assert set(first[2][0]["losses"]) == {"rotation"}


def test_without_a_public_size_epsilon_is_not_sent(monkeypatch, tmp_path):
    cfg = tiny_config(public_size=None)
    _, scalars, _ = site_reply(monkeypatch, tmp_path, cfg, ImageDataset(images(20), None, "d"))
    assert scalars == {}


def test_no_loss_is_whitelisted():
    assert not any(name.startswith("loss") for name in allowed_fit_metrics())


@pytest.mark.parametrize(("n", "declared"), [(1, 1), (7, 7), (125, 112), (128, 128), (1000, 896)])
def test_the_simulation_declares_n_rounded_down_to_its_top_three_bits(n, declared):
    assert st.declared_size(n) == declared
