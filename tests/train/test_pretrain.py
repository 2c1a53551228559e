"""Synthetic warm start: trained without privacy, saved with a card, loaded back with checks."""

import json

import pytest
import torch

from ssl_fed.config import EncoderConfig, RootConfig
from ssl_fed.models import build_encoder
from ssl_fed.train.pretrain import (
    WarmStartError,
    load_warm_start,
    pretrain_synthetic,
    save_warm_start,
)

TINY = EncoderConfig(width=8, norm_groups=4, proj_hidden=16, proj_dim=8)


def tiny_config(task="contrastive"):
    cfg = RootConfig()
    cfg.encoder = TINY
    cfg.task.name, cfg.task.negatives = task, "batch"
    cfg.train.batch_size, cfg.train.progress = 64, False
    return cfg


@pytest.fixture(scope="module")
def warm_start(tmp_path_factory):
    model, card = pretrain_synthetic(tiny_config(), family="strokes", num_images=200, epochs=1)
    out = save_warm_start(model, card, tmp_path_factory.mktemp("warm") / "start")
    return model, card, out


def test_pretraining_spends_no_site_budget_and_says_so(warm_start):
    # Prepare
    cfg = tiny_config()

    # Execute
    _, card, _ = warm_start

    # Assert: the caller's config is untouched (privacy stays on for the sites)
    assert cfg.privacy.enabled
    assert card["site_data_used"] is False and card["site_budget_consumed"] is False
    assert card["epsilon_per_site"] == 0.0
    assert card["family"] == "strokes" and card["num_images"] == 200 and card["epochs"] == 1
    assert card["task"]["name"] == "contrastive" and card["encoder"]["width"] == 8
    assert card["seed"] == 0 and card["channels"] == 1 and card["image_size"] == 8
    assert card["steps"] == 4


def test_a_saved_warm_start_loads_back_identically(warm_start):
    # Prepare
    model, card, out = warm_start

    # Execute
    state, loaded = load_warm_start(out, encoder=build_encoder(TINY, 1))

    # Assert
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "card.md",
        "encoder.pt",
        "heads.pt",
    ]
    assert loaded == json.loads(json.dumps(card))
    expected = model.encoder.state_dict()
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert "no ledger charged" in (out / "card.md").read_text()


def test_a_corrupt_encoder_file_is_named_in_the_error(warm_start, tmp_path):
    # Prepare
    _, card, _ = warm_start
    model, _ = pretrain_synthetic(tiny_config(), family="strokes", num_images=64, epochs=1)
    out = save_warm_start(model, card, tmp_path / "w")
    (out / "encoder.pt").write_bytes(b"not a torch file")

    # Execute / Assert
    with pytest.raises(WarmStartError, match=r"encoder\.pt is corrupt"):
        load_warm_start(out)


def test_a_corrupt_or_missing_card_is_named_in_the_error(warm_start, tmp_path):
    model, card, _ = warm_start
    out = save_warm_start(model, card, tmp_path / "w")
    (out / "card.json").write_text("{ truncated")
    with pytest.raises(WarmStartError, match=r"card\.json is not valid JSON"):
        load_warm_start(out)
    (out / "card.json").unlink()
    with pytest.raises(WarmStartError, match=r"card\.json is missing"):
        load_warm_start(out)
    with pytest.raises(WarmStartError, match="does not exist"):
        load_warm_start(tmp_path / "nowhere")


def test_an_encoder_of_another_shape_is_refused_with_both_shapes(warm_start):
    # Prepare: the site's images are RGB, the warm start was grayscale
    _, _, out = warm_start

    # Execute / Assert
    with pytest.raises(
        WarmStartError, match=r"block1\.0\.weight: expected \[8, 3, 3, 3\], found \[8, 1, 3, 3\]"
    ):
        load_warm_start(out, encoder=build_encoder(TINY, 3))


def test_weights_that_disagree_with_their_card_are_refused(warm_start, tmp_path):
    model, card, _ = warm_start
    wider = dict(card, encoder_shapes={**card["encoder_shapes"], "block1.0.bias": [16]})
    out = save_warm_start(model, wider, tmp_path / "w")
    with pytest.raises(WarmStartError, match=r"encoder\.pt does not fit the shapes its card"):
        load_warm_start(out)


def test_rgb_pretraining_for_a_folder_site_needs_its_channels():
    cfg = tiny_config()
    cfg.data.name, cfg.data.path = "folder", "/nowhere"
    with pytest.raises(ValueError, match=r"set data\.channels"):
        pretrain_synthetic(cfg, family="dead_leaves", num_images=8, epochs=1)
    model, card = pretrain_synthetic(cfg, family="dead_leaves", num_images=32, epochs=1, channels=3)
    assert card["channels"] == 3 and model.encoder.block1[0].weight.shape[1] == 3
