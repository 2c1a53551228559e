"""Tests for the digits and npz loaders and the shared validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_fed.config import DataConfig
from ssl_fed.data import DataError, load_splits, validate_images
from ssl_fed.data.loaders import convert_channels, resize_images


def _npz(tmp_path: Path, name: str = "d.npz", **arrays: np.ndarray) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_digits_shape_range_and_split_sizes() -> None:
    # Prepare
    cfg = DataConfig(name="digits")
    # Execute
    splits = load_splits(cfg)
    # Assert
    assert splits.test is not None
    assert tuple(splits.train.images.shape) == (1257, 1, 8, 8)
    assert len(splits.test) == 540
    assert splits.train.images.dtype == torch.float32
    assert float(splits.train.images.min()) == 0.0
    assert float(splits.train.images.max()) == 1.0
    assert set(splits.test.labels.tolist()) == set(range(10))  # type: ignore[union-attr]


def test_digits_split_is_deterministic_by_seed() -> None:
    # Prepare / Execute
    a = load_splits(DataConfig(name="digits", seed=0))
    b = load_splits(DataConfig(name="digits", seed=0))
    c = load_splits(DataConfig(name="digits", seed=1))
    # Assert
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)


def test_digits_resized_and_rgb() -> None:
    # Prepare
    cfg = DataConfig(name="digits", image_size=16, channels=3)
    # Execute
    splits = load_splits(cfg)
    # Assert
    assert tuple(splits.train.images.shape[1:]) == (3, 16, 16)
    assert 0.0 <= float(splits.train.images.min()) <= float(splits.train.images.max()) <= 1.0


def test_unknown_dataset_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="digits"):
        load_splits(DataConfig(name="mnist"))


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts_give_nchw(tmp_path: Path, layout: str) -> None:
    # Prepare: 6 uint8 images 5x7 (non-square to tell H from W), gray pixel 255 at (0, 0)
    base = np.zeros((6, 5, 7), dtype=np.uint8)
    base[:, 0, 0] = 255
    arrays = {
        "nhw": base,
        "nhwc": np.repeat(base[..., None], 3, axis=3),
        "nchw": np.repeat(base[:, None], 3, axis=1),
    }
    labels = np.array([0, 1, 0, 1, 0, 1])
    cfg = DataConfig(
        name="npz", path=_npz(tmp_path, images=arrays[layout], labels=labels), image_size=8
    )
    # Execute
    splits = load_splits(cfg)
    # Assert
    channels = 1 if layout == "nhw" else 3
    total = len(splits.train) + (len(splits.test) if splits.test is not None else 0)
    assert total == 6
    assert tuple(splits.train.images.shape[1:]) == (channels, 8, 8)
    assert splits.train.labels is not None and splits.train.labels.dtype == torch.int64
    assert float(splits.train.images[:, :, 0, 0].min()) > 0.5


def test_npz_ambiguous_shape_is_read_as_nchw(tmp_path: Path) -> None:
    # Prepare: [N, 3, 3, 3] with channel c filled with c / 2
    images = np.broadcast_to(np.array([0.0, 0.5, 1.0]).reshape(1, 3, 1, 1), (2, 3, 3, 3))
    cfg = DataConfig(
        name="npz", path=_npz(tmp_path, images=images.astype(np.float32)), image_size=3
    )
    # Execute
    splits = load_splits(cfg)
    # Assert
    assert splits.test is None
    assert splits.train.images[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0]


def test_npz_nan_is_refused(tmp_path: Path) -> None:
    # Prepare
    images = np.zeros((4, 8, 8), dtype=np.float32)
    images[2, 3, 3] = np.nan
    cfg = DataConfig(name="npz", path=_npz(tmp_path, images=images))
    # Execute / Assert
    with pytest.raises(DataError, match=r"NaN.*first bad index 2"):
        load_splits(cfg)


def test_npz_float_out_of_range_names_range(tmp_path: Path) -> None:
    cfg = DataConfig(name="npz", path=_npz(tmp_path, images=np.full((2, 8, 8), 255.0)))
    with pytest.raises(DataError, match=r"\[255, 255\]"):
        load_splits(cfg)


def test_npz_wrong_rank_is_refused(tmp_path: Path) -> None:
    cfg = DataConfig(name="npz", path=_npz(tmp_path, images=np.zeros((4, 8), dtype=np.uint8)))
    with pytest.raises(DataError, match="rank 2"):
        load_splits(cfg)


def test_npz_missing_images_key_lists_keys(tmp_path: Path) -> None:
    cfg = DataConfig(name="npz", path=_npz(tmp_path, x=np.zeros((2, 8, 8))))
    with pytest.raises(DataError, match=r"no 'images'.*'x'"):
        load_splits(cfg)


def test_npz_label_count_mismatch(tmp_path: Path) -> None:
    path = _npz(tmp_path, images=np.zeros((3, 8, 8), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_splits(DataConfig(name="npz", path=path))


def test_npz_test_path_channels_follow_train(tmp_path: Path) -> None:
    # Prepare: gray train, RGB labelled test
    train = _npz(tmp_path, "train.npz", images=np.zeros((4, 8, 8), np.uint8))
    test = _npz(
        tmp_path, "test.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 1])
    )
    # Execute
    splits = load_splits(DataConfig(name="npz", path=train, test_path=test))
    # Assert
    assert splits.test is not None and splits.test.channels == 1
    assert len(splits.train) == 4


def test_validate_images_empty_and_channels() -> None:
    with pytest.raises(DataError, match="empty"):
        validate_images(torch.zeros(0, 1, 8, 8), "x")
    with pytest.raises(DataError, match="4 channels"):
        validate_images(torch.zeros(1, 4, 8, 8), "x")


def test_convert_channels_uses_luma_and_resize_keeps_range() -> None:
    # Prepare: pure red
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    # Execute
    gray = convert_channels(red, 1)
    small = resize_images(torch.rand(2, 1, 16, 16), 8)
    # Assert
    assert torch.allclose(gray, torch.full((1, 1, 4, 4), 0.299))
    assert small.shape == (2, 1, 8, 8) and 0 <= float(small.min()) <= float(small.max()) <= 1
