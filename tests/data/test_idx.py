"""Tests for the IDX reader, ``data=idx`` and ``data=fashion_mnist`` on tiny hand-written files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_fed.cli import main
from ssl_fed.config import DataConfig, load_config
from ssl_fed.data import DataError, load_splits
from ssl_fed.data.idx import FASHION_MNIST_DIR, labels_file_for, read_idx, write_idx
from ssl_fed.data.loaders import DATASETS

IMAGES = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4) * 3
LABELS = np.array([0, 1, 2, 1, 0], dtype=np.uint8)


def _pair(folder: Path, prefix: str = "train", gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", LABELS)
    return write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", IMAGES)


def _fashion_dir(folder: Path) -> Path:
    _pair(folder, "train")
    _pair(folder, "t10k")
    return folder


def _idx_cfg(path: Path, test_path: Path | None = None) -> DataConfig:
    return DataConfig(
        name="idx", path=str(path), test_path=test_path and str(test_path), image_size=4
    )


@pytest.mark.parametrize("gz", [True, False])
def test_idx_pair_loads_exact_pixels_and_labels(tmp_path: Path, gz: bool) -> None:
    # Prepare
    train = _pair(tmp_path / "a", gz=gz)
    test = _pair(tmp_path / "b", "t10k", gz=gz)
    # Execute
    splits = load_splits(_idx_cfg(train, test))
    # Assert: pixel v is v/255, in [N, 1, H, W]; labels one to one
    expected = torch.from_numpy(IMAGES.astype(np.float32) / 255.0).unsqueeze(1)
    assert splits.test is not None
    assert torch.equal(splits.train.images, expected)
    assert splits.train.labels is not None
    assert splits.train.labels.tolist() == LABELS.tolist()
    assert splits.test.labels is not None and len(splits.test) == 5


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    # Prepare: a gzipped payload in a file without .gz
    file = write_idx(tmp_path / "x-images-idx3-ubyte", IMAGES, compress=True)
    # Execute / Assert
    assert np.array_equal(read_idx(file), IMAGES)


def test_big_endian_int_and_float_codes_round_trip(tmp_path: Path) -> None:
    # Prepare: 0x0C (int32) needs byte swapping; 0x0D (float32) too
    ints = np.array([1, 256, 65536, -2], dtype=np.int32)
    floats = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    # Execute
    read_ints = read_idx(write_idx(tmp_path / "i", ints))
    read_floats = read_idx(write_idx(tmp_path / "f", floats))
    # Assert: the header's big-endian bytes are what the format says
    assert (tmp_path / "i").read_bytes()[:12] == bytes([0, 0, 0x0C, 1, 0, 0, 0, 4, 0, 0, 0, 1])
    assert read_ints.tolist() == ints.tolist()
    assert read_floats.tolist() == floats.tolist()


def test_labels_file_naming_rule(tmp_path: Path) -> None:
    # Prepare
    images = _pair(tmp_path, "t10k", gz=False)
    # Execute / Assert
    assert labels_file_for(images) == tmp_path / "t10k-labels-idx1-ubyte"
    assert labels_file_for(tmp_path / "other.idx") is None


def test_train_without_labels_is_unlabelled_but_test_without_labels_is_refused(
    tmp_path: Path,
) -> None:
    # Prepare: images only, no labels file beside them
    train = write_idx(tmp_path / "train-images-idx3-ubyte", IMAGES)
    test = write_idx(tmp_path / "test-images-idx3-ubyte", IMAGES)
    # Execute
    alone = load_splits(_idx_cfg(train))
    # Assert
    assert alone.train.labels is None and alone.test is None
    with pytest.raises(DataError, match="has no labels"):
        load_splits(_idx_cfg(train, test))


def _header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x08\x03" + bytes(40), "bad magic number"),
        (_header(0x0A, (1, 2, 2)) + bytes(4), "unknown IDX dtype code 0x0a"),
        (_header(0x08, (2, 4, 4)) + bytes(31), "truncated"),
        (_header(0x08, (2, 4, 4)) + bytes(33), "longer than its header says"),
        (_header(0x08, (0, 4, 4)), "dimension is zero"),
        (bytes([0, 0, 8, 3, 0, 0]), "header is truncated"),
        (_header(0x08, (2, 4)) + bytes(8), "expected \\[N, H, W\\]"),
        (_header(0x0B, (1, 2, 2)) + bytes(8), "dtype int16"),
        (_header(0x0D, (1, 1, 1)) + np.array([2.0], ">f4").tobytes(), "pixel values span"),
        (gzip.compress(_header(0x08, (2, 4, 4)) + bytes(32))[:-9], "damaged"),
    ],
    ids=[
        "magic",
        "dtype-code",
        "truncated",
        "trailing",
        "zero-dim",
        "short-header",
        "rank",
        "int16-images",
        "float-range",
        "broken-gzip",
    ],
)
def test_corrupt_images_file_raises_one_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    # Prepare
    file = tmp_path / "bad-images-idx3-ubyte"
    file.write_bytes(content)
    # Execute / Assert
    with pytest.raises(DataError, match=message) as err:
        load_splits(_idx_cfg(file))
    assert str(file) in str(err.value)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1, 2], dtype=np.uint8), "3 labels for 5 images"),
        (np.zeros((5, 2), dtype=np.uint8), "expected \\[N\\] integers"),
        (np.zeros(5, dtype=np.float32), "expected \\[N\\] integers"),
        (np.array([0, 1, -1, 0, 0], dtype=np.int8), "negative"),
    ],
    ids=["count", "rank", "float", "negative"],
)
def test_bad_labels_file_is_named(tmp_path: Path, labels: np.ndarray, message: str) -> None:
    # Prepare
    images = write_idx(tmp_path / "train-images-idx3-ubyte", IMAGES)
    bad = write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    # Execute / Assert
    with pytest.raises(DataError, match=message) as err:
        load_splits(_idx_cfg(images))
    assert str(bad) in str(err.value)


def test_fashion_mnist_reads_the_four_files_and_keeps_the_official_test_split(
    tmp_path: Path,
) -> None:
    # Prepare
    folder = _fashion_dir(tmp_path / "fm")
    # Execute
    splits = load_splits(DataConfig(name="fashion_mnist", path=str(folder), image_size=4))
    # Assert: the t10k files are the test split, nothing is re-split
    assert splits.test is not None
    assert len(splits.train) == 5 and len(splits.test) == 5
    assert splits.test.source == "fashion_mnist:test"


def test_fashion_mnist_missing_test_file_fails_before_anything_loads(tmp_path: Path) -> None:
    # Prepare
    folder = _fashion_dir(tmp_path / "fm")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    # Execute / Assert
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.*dataset-fashion-mnist"):
        load_splits(DataConfig(name="fashion_mnist", path=str(folder), image_size=4))


def test_cli_without_the_package_exits_2_naming_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # Execute
    code = main(
        ["train-local", "data=fashion_mnist", f"data.path={tmp_path}", f"out={tmp_path}/out"]
    )
    # Assert: one error line naming the package; nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert [line for line in err if line.startswith("error:")] == err[-1:]
    assert "apt-get install dataset-fashion-mnist" in err[-1]
    assert not (tmp_path / "out").exists()


def test_fashion_mnist_yaml_composes() -> None:
    # Assert: the format is registered and its YAML composes (config validation reads the registry)
    assert "fashion_mnist" in DATASETS
    cfg = load_config(["data=fashion_mnist"])
    assert (cfg.data.path, cfg.data.image_size, cfg.data.channels) == (FASHION_MNIST_DIR, 28, 1)


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed "
    "(apt-get install dataset-fashion-mnist, as root; CI installs it)",
)
def test_real_fashion_mnist_package() -> None:
    # Execute
    splits = load_splits(load_config(["data=fashion_mnist"]).data)
    # Assert: the published sizes and a balanced 10-class split
    assert splits.test is not None
    assert tuple(splits.train.images.shape) == (60000, 1, 28, 28)
    assert tuple(splits.test.images.shape) == (10000, 1, 28, 28)
    assert splits.train.labels is not None
    assert torch.bincount(splits.train.labels).tolist() == [6000] * 10
