"""Turn ``cfg.data`` into a site's train/test images: one entry point, :func:`load_splits`.

Datasets (``data.name``):

- ``digits``: scikit-learn's 8x8 handwritten digits (1797 images, ships with sklearn, no
  download); pixel values 0..16 are divided by 16; a fixed stratified train/test split.
- ``folder``: a directory of PNG/JPEG files, see :mod:`ssl_fed.data.folder`.
- ``npz``: one NumPy ``.npz`` archive (``numpy.savez``), format below.
- ``idx``: an MNIST-format IDX images file (labels by a naming rule), see :mod:`ssl_fed.data.idx`.
- ``fashion_mnist``: the four Fashion-MNIST IDX files in ``data.path`` (Debian's
  ``dataset-fashion-mnist``); the official test split is the test set, see :mod:`ssl_fed.data.idx`.

The ``.npz`` format
-------------------
``images`` (required)
    ``[N, H, W]`` (grayscale), ``[N, H, W, C]`` or ``[N, C, H, W]`` with ``C`` in {1, 3}. The
    channel axis is detected: dim 1 in {1, 3} means NCHW; otherwise a last dim in {1, 3} means
    NHWC. An ambiguous shape such as ``[N, 3, 3, 3]`` is read as NCHW (PyTorch's layout).
    dtype ``uint8`` is scaled by 1/255; float arrays must already lie in ``[0, 1]``; other
    dtypes are refused.
``labels`` (optional)
    ``[N]`` integer class ids ``0..K-1``; used only for evaluation and simulated partitions.
``persons`` (optional)
    ``[N]`` integer or string person ids (``privacy.unit=person``, :mod:`ssl_fed.data.persons`).

Images are resized to ``data.image_size`` squared (bilinear, antialiased when shrinking) and,
when ``data.channels`` is set, converted (1 -> 3 repeats; 3 -> 1 uses luma weights 0.299,
0.587, 0.114, the same as PIL's ``"L"``). Test images come from ``data.test_path`` (loaded
with the same settings, labels required) or, when the training data are labelled, a seeded
stratified ``data.test_fraction`` split; otherwise there is no test split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.model_selection import train_test_split

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import DataSplits, ImageDataset
from ssl_fed.data.folder import load_folder
from ssl_fed.data.idx import load_fashion_mnist, load_idx
from ssl_fed.data.npzcheck import check_npz_sizes
from ssl_fed.data.persons import npz_persons
from ssl_fed.data.validation import DataError, validate_images, validate_labels

logger = logging.getLogger("ssl_fed.data")

_LUMA = (0.299, 0.587, 0.114)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` images to ``[N, C, size, size]`` (bilinear).

    Antialiasing is on when shrinking so that thin strokes are averaged rather than aliased
    away; bilinear weights are non-negative, so the ``[0, 1]`` range is kept (clamped against
    rounding).
    """
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < images.shape[-2] or size < images.shape[-1]
    out = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.clamp_(0.0, 1.0)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Convert ``[N, C, H, W]`` images to ``channels`` (1 or 3); ``None`` keeps them as they are."""
    if channels is None or images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor(_LUMA, dtype=images.dtype).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True).clamp_(0.0, 1.0)
    raise DataError(f"cannot convert {images.shape[1]} channels to data.channels={channels}")


def split_train_test(dataset: ImageDataset, test_fraction: float, seed: int) -> DataSplits:
    """Split a labelled dataset into train/test, stratified by label when possible.

    Stratification keeps every class in both halves, which matters for the few-label probes;
    it is impossible when a class has a single example (or there are fewer test slots than
    classes), so the split then falls back to a plain seeded shuffle and logs why.
    """
    n = len(dataset)
    if dataset.labels is None or n < 2:
        return DataSplits(dataset, None)
    positions = np.arange(n)
    labels = dataset.labels.numpy()
    try:
        train_idx, test_idx = train_test_split(
            positions, test_size=test_fraction, stratify=labels, random_state=seed
        )
    except ValueError as err:
        logger.info("%s: stratified split impossible (%s); splitting without", dataset.source, err)
        train_idx, test_idx = train_test_split(
            positions, test_size=test_fraction, random_state=seed
        )
    return DataSplits(
        dataset.subset(torch.from_numpy(np.sort(train_idx))),
        dataset.subset(torch.from_numpy(np.sort(test_idx))),
    )


def load_digits_splits(cfg: DataConfig) -> DataSplits:
    """Load sklearn's digits as ``[N, 1, 8, 8]`` in ``[0, 1]`` with a stratified split.

    With the default ``test_fraction=0.3`` the 1797 images split 1257 / 540.
    """
    bunch = sklearn_load_digits()
    images = torch.from_numpy(np.asarray(bunch.data, dtype=np.float32)).view(-1, 1, 8, 8) / 16.0
    images = convert_channels(resize_images(images, cfg.image_size), cfg.channels)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    validate_images(images, "sklearn:digits")
    validate_labels(labels, int(images.shape[0]), "sklearn:digits")
    return split_train_test(
        ImageDataset(images, labels, "sklearn:digits"), cfg.test_fraction, cfg.seed
    )


def _to_nchw(array: np.ndarray, source: str) -> torch.Tensor:
    """Scale an ``images`` array to float ``[0, 1]`` and move its channel axis to dim 1."""
    if array.dtype == np.uint8:
        images = torch.from_numpy(array.astype(np.float32) / 255.0)
    elif np.issubdtype(array.dtype, np.floating):
        images = torch.from_numpy(array.astype(np.float32))
    else:
        raise DataError(
            f"{source}: 'images' has dtype {array.dtype}; store uint8 (0..255) or floats in [0, 1]."
        )
    if images.ndim == 3:
        return images.unsqueeze(1)
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        return images.permute(0, 3, 1, 2).contiguous()
    return images


def load_npz(cfg: DataConfig, path: str) -> ImageDataset:
    """Load one ``.npz`` archive (format in the module docstring) into an :class:`ImageDataset`.

    Raises
    ------
    DataError
        On a missing/unreadable file, a missing ``images`` key, or images/labels that fail
        validation (rank, channels, NaN/Inf, range).
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.path={file} does not exist; point it at a .npz file.")
    check_npz_sizes(file)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {file} as .npz: {err}. Write it with numpy.savez.") from err
    if "images" not in arrays:
        raise DataError(
            f"{file} has no 'images' array (found keys: {sorted(arrays) or 'none'}); save it "
            "with numpy.savez(path, images=..., labels=...)."
        )
    images = _to_nchw(arrays["images"], str(file))
    validate_images(images, str(file))
    images = convert_channels(resize_images(images, cfg.image_size), cfg.channels)
    labels = None
    if "labels" in arrays:
        labels = torch.from_numpy(np.asarray(arrays["labels"]))
        validate_labels(labels, int(images.shape[0]), f"{file} ['labels']")
        labels = labels.to(torch.int64)
    persons = npz_persons(arrays, str(file), int(images.shape[0]))
    return ImageDataset(images.contiguous(), labels, str(file), persons)


PathLoader = Callable[[DataConfig, str], ImageDataset]


def _path_splits(load: PathLoader) -> Callable[[DataConfig], DataSplits]:
    """Wrap a path loader into a split loader (``test_path``, else a labelled split)."""

    def splits(cfg: DataConfig) -> DataSplits:
        if not cfg.path:
            raise DataError(f"data.name={cfg.name} needs data.path; set data.path=DIR or FILE.")
        train = load(cfg, cfg.path)
        if not cfg.test_path:
            return split_train_test(train, cfg.test_fraction, cfg.seed)
        test = load(replace(cfg, channels=train.channels), cfg.test_path)
        if test.labels is None:
            raise DataError(
                f"data.test_path={cfg.test_path} has no labels, but the test split exists for "
                "evaluation; use class sub-folders (folder), a 'labels' array (npz) or a labels "
                "file named by the IDX rule (idx: *-labels-idx1-ubyte[.gz])."
            )
        return DataSplits(train, test)

    return splits


DATASETS: dict[str, Callable[[DataConfig], DataSplits]] = {
    "digits": load_digits_splits,
    "folder": _path_splits(load_folder),
    "npz": _path_splits(load_npz),
    "idx": _path_splits(load_idx),
    "fashion_mnist": load_fashion_mnist,
}


def load_splits(cfg: DataConfig) -> DataSplits:
    """Load a site's validated train (and, when possible, test) images from ``cfg``.

    Parameters
    ----------
    cfg : DataConfig
        ``cfg.name`` picks the dataset from :data:`DATASETS`; the other fields are described
        in the module docstring.

    Returns
    -------
    DataSplits
        ``train`` and ``test`` (``None`` for unlabelled data without ``test_path``).

    Raises
    ------
    ValueError
        For an unknown ``cfg.name`` (the message lists the valid names).
    DataError
        For unusable data; the message names the file and the fix.
    """
    if cfg.name not in DATASETS:
        raise ValueError(f"unknown data.name={cfg.name!r}; valid names: {sorted(DATASETS)}")
    return DATASETS[cfg.name](cfg)
