"""Procedural images: seeded, in range, the right shape for every size and channel count."""

import pytest
import torch

from ssl_fed.data.synthetic import FAMILIES, generate_synthetic


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_images_have_the_requested_shape_dtype_and_range(family, size, channels):
    # Execute
    data = generate_synthetic(family, 12, image_size=size, channels=channels, seed=0)

    # Assert
    assert data.images.shape == (12, channels, size, size)
    assert data.images.dtype == torch.float32
    assert data.labels is None
    assert torch.isfinite(data.images).all()
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert data.images.std() > 0.01, "images must not be blank"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_same_seed_gives_the_same_images_and_another_seed_differs(family):
    # Execute
    first = generate_synthetic(family, 16, image_size=8, channels=1, seed=3).images
    again = generate_synthetic(family, 16, image_size=8, channels=1, seed=3).images
    other = generate_synthetic(family, 16, image_size=8, channels=1, seed=4).images

    # Assert
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_images_within_one_batch_differ(family):
    images = generate_synthetic(family, 8, image_size=16, channels=3, seed=0).images
    flat = images.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(8) * 1e3).min() > 0.1


def test_strokes_are_ink_on_a_blank_grayscale_page():
    # Assert: mostly background (0) with some full-strength ink, like the digits
    images = generate_synthetic("strokes", 64, image_size=32, channels=1, seed=0).images
    assert (images < 0.05).float().mean() > 0.5
    assert images.amax(dim=(1, 2, 3)).min() > 0.5


def test_an_unknown_family_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown synthetic family 'fractal'.*dead_leaves"):
        generate_synthetic("fractal", 4, image_size=8, channels=1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 4, "channels": 1}, "image_size=4"),
        ({"image_size": 64, "channels": 1}, "image_size=64"),
        ({"image_size": 8, "channels": 2}, "channels=2"),
    ],
)
def test_out_of_range_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic("strokes", 4, seed=0, **kwargs)


def test_zero_images_are_refused():
    with pytest.raises(ValueError, match="n=0"):
        generate_synthetic("strokes", 0, image_size=8, channels=1, seed=0)
