"""The site library without Flower: kept heads, and a privacy-off site that opens no ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_fed.config import RootConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.models import build_model
from ssl_fed.site import node
from ssl_fed.site.rounds import (
    answer_budget_query,
    load_local_heads,
    local_heads,
    site_ledger,
    train_site_round,
)
from tests.helpers import images


def tiny_config() -> RootConfig:
    cfg = RootConfig()
    cfg.encoder.width, cfg.encoder.norm_groups = 8, 4
    cfg.encoder.proj_hidden, cfg.encoder.proj_dim = 16, 8
    cfg.train.batch_size, cfg.train.local_epochs = 8, 1
    cfg.task.name, cfg.data.image_size, cfg.data.channels = "rotation", 8, 1
    cfg.privacy.enabled = False
    return cfg


def test_kept_heads_round_trip_into_a_fresh_model() -> None:
    # Prepare: two models with different random heads
    torch.manual_seed(0)
    cfg = tiny_config()
    trained, fresh = build_model(cfg.encoder, 1), build_model(cfg.encoder, 1)

    # Execute
    load_local_heads(fresh, local_heads(trained))

    # Assert: every head tensor is now the trained one; the encoder is untouched
    assert tuple(trained.heads) == ("rotation", "projection")
    for name, head in trained.heads.items():
        for key, value in head.state_dict().items():
            assert torch.equal(fresh.heads[name].state_dict()[key], value)
    assert not torch.equal(
        next(iter(fresh.encoder.state_dict().values())),
        next(iter(trained.encoder.state_dict().values())),
    )


@pytest.mark.slow
def test_a_privacy_off_site_trains_sends_no_epsilon_and_opens_no_ledger(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Prepare: a deployed site of 16 images
    cfg = tiny_config()
    data = ImageDataset(images(16), None, "d")
    monkeypatch.setattr(node, "site_data", lambda cfg, info: data)
    info = node.site_info(cfg, {"data-path": "x.npz", "state-dir": str(tmp_path / "state")})
    received = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), False))

    # Execute
    can = answer_budget_query(cfg, info, "run", 1)
    result = train_site_round(cfg, info, received, None, "run", 1)

    # Assert: trained (a non-zero update), heads kept, nothing privacy-related written or sent
    assert can and site_ledger(cfg, info) is None
    assert result.scalars == {} and result.heads is not None
    assert any(float(abs(d).max()) > 0 for d in result.delta)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["site_metrics.jsonl"]
    assert not (tmp_path / "state.keys").exists()
