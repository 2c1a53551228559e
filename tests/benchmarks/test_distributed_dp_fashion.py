"""The Fashion-MNIST distributed-DP benchmark's data selection and verdicts, on tiny IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.distributed_dp import SITES
from benchmarks.distributed_dp_fashion import load_federation, verdict
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.idx import FASHION_MNIST_FILES, write_idx

PER_CLASS, CLASSES = 30, 10


def _ids(data: ImageDataset) -> list[int]:
    """Recover each image's index from its first two pixels (written by ``_fashion``)."""
    px = np.rint(data.images[:, 0, 0, :2].numpy() * 255).astype(int)
    return [int(a + 256 * b) for a, b in px]


def _fashion(folder: Path) -> Path:
    """Write 300 training and 20 test 28x28 images; image i carries i in its first two pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", PER_CLASS * CLASSES), ("test", 2 * CLASSES)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
        labels = (np.arange(n) % CLASSES).astype(np.uint8)
        write_idx(folder / f"{FASHION_MNIST_FILES[split][0]}.gz", images)
        write_idx(folder / f"{FASHION_MNIST_FILES[split][1]}.gz", labels)
    return folder


def test_sites_cover_the_whole_training_split_and_pool_and_val_are_disjoint_strata(
    tmp_path: Path,
) -> None:
    # Prepare
    data = _fashion(tmp_path / "fashion")
    # Execute
    fed = load_federation(str(data), pool_per_class=3, val_per_class=2)
    # Assert: every training image is at exactly one of the 10 sites
    site_ids = [i for s in fed.sites for i in _ids(s)]
    assert len(fed.sites) == SITES
    assert sorted(site_ids) == list(range(PER_CLASS * CLASSES))
    # pool: 3 per class, val: 2 per class, no image in both; labels follow the images
    pool, val = _ids(fed.pool), _ids(fed.val)
    assert fed.pool.labels is not None and fed.val.labels is not None
    assert np.bincount(fed.pool.labels.numpy()).tolist() == [3] * CLASSES
    assert np.bincount(fed.val.labels.numpy()).tolist() == [2] * CLASSES
    assert not set(pool) & set(val)
    assert [i % CLASSES for i in pool] == fed.pool.labels.tolist()
    # the probe is scored on the official test files, not on training images
    assert fed.splits.test is not None and len(fed.splits.test) == 2 * CLASSES


@pytest.mark.parametrize(
    ("row", "ref", "need", "expected"),
    [
        ("distributed:8", None, 5.0, "(+3.5): missed by 1.5 points"),
        ("distributed:3", "local:3", 3.0, "(+4.0): met"),
        ("local:8", None, 0.5, "not measured in this run"),
    ],
)
def test_verdict_reads_the_k10_gain_against_its_reference(
    row: str, ref: str | None, need: float, expected: str
) -> None:
    # Prepare: k = 10 accuracies 68.5 (warm start), 72.0, 71.0, 75.0; local:8 has no probe
    rows = [
        {"row": "warm start", "probe": {"10": 68.5}},
        {"row": "distributed:8", "probe": {"10": 72.0}},
        {"row": "local:3", "probe": {"10": 71.0}},
        {"row": "distributed:3", "probe": {"10": 75.0}},
        {"row": "local:8", "probe": {}},
    ]
    # Execute
    line = verdict(rows, row, ref, need)
    # Assert
    assert line.endswith(expected)
