"""Tests for the image-folder loader."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_fed.config import DataConfig
from ssl_fed.data import DataError, load_splits


def _save(path: Path, mode: str = "L", size: int = 12, value: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value, 0, 0)).save(path)


def _cfg(path: Path, **kwargs: object) -> DataConfig:
    return DataConfig(name="folder", path=str(path), image_size=8, **kwargs)  # type: ignore[arg-type]


def test_class_subfolders_give_sorted_labels(tmp_path: Path) -> None:
    # Prepare: 3 images of class "b", 3 of class "a"
    for i in range(3):
        _save(tmp_path / "b" / f"{i}.png", value=50)
        _save(tmp_path / "a" / f"{i}.PNG", value=250)
    # Execute
    splits = load_splits(_cfg(tmp_path, test_fraction=0.5))
    # Assert
    assert splits.test is not None
    train, test = splits.train, splits.test
    assert len(train) + len(test) == 6
    for ds in (train, test):
        assert ds.labels is not None
        for image, label in zip(ds.images, ds.labels.tolist(), strict=True):
            expected = 250 / 255 if label == 0 else 50 / 255
            assert abs(float(image.mean()) - expected) < 1e-3
    assert train.labels is not None and set(train.labels.tolist()) == {0, 1}


def test_flat_folder_has_no_labels_and_no_test(tmp_path: Path) -> None:
    # Prepare
    for i in range(4):
        _save(tmp_path / f"img{i}.jpg", size=20)
    # Execute
    splits = load_splits(_cfg(tmp_path))
    # Assert
    assert splits.test is None and splits.train.labels is None
    assert tuple(splits.train.images.shape) == (4, 1, 8, 8)


def test_gray_and_rgb_mix_gives_three_channels(tmp_path: Path) -> None:
    # Prepare
    _save(tmp_path / "gray.png", "L", value=100)
    _save(tmp_path / "red.png", "RGB", value=255)
    # Execute
    images = load_splits(_cfg(tmp_path)).train.images
    # Assert: sorted order gray, red; gray repeated to 3 channels
    assert tuple(images.shape) == (2, 3, 8, 8)
    assert np.allclose(images[0].numpy(), 100 / 255, atol=1e-6)
    assert float(images[1, 0].min()) == 1.0 and float(images[1, 1].max()) == 0.0


def test_forced_grayscale(tmp_path: Path) -> None:
    _save(tmp_path / "red.png", "RGB", value=255)
    images = load_splits(_cfg(tmp_path, channels=1)).train.images
    assert tuple(images.shape) == (1, 1, 8, 8)
    assert abs(float(images.mean()) - 76 / 255) < 1e-6


def test_corrupt_file_names_it(tmp_path: Path) -> None:
    # Prepare
    _save(tmp_path / "good.png")
    (tmp_path / "x.png").write_bytes(b"not an image at all")
    # Execute / Assert
    with pytest.raises(DataError, match=r"x\.png.*on_bad_file=skip"):
        load_splits(_cfg(tmp_path))


def test_truncated_file_is_caught(tmp_path: Path) -> None:
    _save(tmp_path / "good.png", size=64)
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"trunc\.png"):
        load_splits(_cfg(tmp_path))


def test_corrupt_file_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    _save(tmp_path / "a.png")
    _save(tmp_path / "b.png")
    (tmp_path / "x.png").write_bytes(b"garbage")
    # Execute
    with caplog.at_level(logging.WARNING, logger="ssl_fed.data"):
        splits = load_splits(_cfg(tmp_path, on_bad_file="skip"))
    # Assert
    assert len(splits.train) == 2
    assert "skipped 1" in caplog.text and "x.png" in caplog.text


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        load_splits(_cfg(tmp_path))


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        load_splits(_cfg(tmp_path / "nope"))


def test_mixed_layout_is_refused(tmp_path: Path) -> None:
    _save(tmp_path / "top.png")
    _save(tmp_path / "cls" / "a.png")
    with pytest.raises(DataError, match="mixes"):
        load_splits(_cfg(tmp_path))
