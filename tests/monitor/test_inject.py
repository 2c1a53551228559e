"""Injected drift: spec validation, and each kind does what its docstring says."""

import pytest
import torch

from ssl_fed.config import ConfigError, load_config
from ssl_fed.monitor.inject import (
    DriftSpec,
    active_drift,
    apply_drift,
    blur,
    class_prior_rows,
    contrast,
    parse_drift,
    rotate,
)


def test_parse_and_active_drift() -> None:
    # Prepare
    raw = [{"site": 2, "round": 3, "kind": "blur", "strength": 0.5}]
    # Execute
    specs = parse_drift(raw, num_sites=4, rounds=10)
    # Assert: in force from round 3 on, at site 2 only
    assert specs == [DriftSpec(2, 3, "blur", 0.5)]
    assert active_drift(specs, 2, 2) is None and active_drift(specs, 2, 9) == specs[0]
    assert active_drift(specs, 1, 9) is None


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"site": 9, "round": 1, "kind": "blur", "strength": 0.5}, "site"),
        ({"site": 0, "round": 0, "kind": "blur", "strength": 0.5}, "round"),
        ({"site": 0, "round": 1, "kind": "fog", "strength": 0.5}, "kind"),
        ({"site": 0, "round": 1, "kind": "blur", "strength": 1.5}, "strength"),
        ({"site": 0, "round": 1, "kind": "blur"}, "exactly"),
    ],
)
def test_bad_drift_entries_name_the_field(entry: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_drift([entry], num_sites=4, rounds=10)


def test_config_refuses_adapt_and_checks_drift() -> None:
    with pytest.raises(ConfigError, match=r"sim\.on_drift"):
        load_config(["sim.on_drift=adapt"])
    with pytest.raises(ConfigError, match=r"sim.drift\[0\].site"):
        load_config(["sim.drift=[{site: 10, round: 1, kind: blur, strength: 1}]"])


def test_quarter_turn_and_identity() -> None:
    # Prepare: a 4x4 image with one bright pixel
    img = torch.zeros(1, 1, 4, 4)
    img[0, 0, 0, 1] = 1.0
    # Execute / Assert: strength 1 = 90 degrees (torch.rot90 by one turn, up to orientation)
    turned = rotate(img, 1.0)
    assert torch.allclose(turned, torch.rot90(img, 1, (2, 3)), atol=1e-5) or torch.allclose(
        turned, torch.rot90(img, -1, (2, 3)), atol=1e-5
    )
    assert torch.allclose(rotate(img, 0.0), img, atol=1e-6)


def test_blur_and_contrast_keep_the_mean_and_reduce_the_spread() -> None:
    # Prepare
    img = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    # Execute
    flat = contrast(img, 1.0)
    half = contrast(img, 0.5)
    smooth = blur(img, 0.5)
    # Assert: contrast 1 is the image mean everywhere; 0.5 halves deviations; blur lowers spread
    assert torch.allclose(flat, img.mean(dim=(1, 2, 3), keepdim=True).expand_as(img))
    assert torch.allclose(half - flat, 0.5 * (img - flat), atol=1e-6)
    assert smooth.std() < img.std()
    assert torch.equal(blur(img, 0.0), img)


def test_class_prior_full_strength_draws_only_the_lower_classes() -> None:
    labels = torch.tensor([0, 1, 2, 3] * 5)
    rows = class_prior_rows(labels, 200, 1.0, torch.Generator().manual_seed(0))
    assert set(labels[rows].tolist()) <= {0, 1}


def test_domain_replaces_the_stated_fraction() -> None:
    # Prepare: a pool of zeros; stroke images are not all zero
    pool, labels = torch.zeros(10, 1, 8, 8), torch.arange(10)
    spec = DriftSpec(0, 1, "domain", 0.5)
    # Execute
    window = apply_drift(spec, pool, labels, 10, torch.Generator().manual_seed(0))
    # Assert
    assert int((window.flatten(1).abs().sum(1) > 0).sum()) == 5
