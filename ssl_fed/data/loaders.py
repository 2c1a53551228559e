"""Turn ``cfg.data`` into a site's train/test images: one entry point, :func:`load_splits`.

Data formats (``data.name``), registered in :data:`ssl_fed.data.registry.DATASETS`; a new format
is one module in ``ssl_fed/data/formats/`` (imported here) plus ``configs/data/<name>.yaml``:

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
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_load_digits

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import DataSplits, ImageDataset
from ssl_fed.data.folder import load_folder
from ssl_fed.data.idx import load_fashion_mnist, load_idx
from ssl_fed.data.images import convert_channels as convert_channels
from ssl_fed.data.images import resize_images as resize_images
from ssl_fed.data.npzcheck import check_npz_sizes
from ssl_fed.data.persons import npz_persons
from ssl_fed.data.registry import (
    DATASETS,
    register_data_format,
    register_path_format,
    split_train_test,
)
from ssl_fed.data.validation import DataError, validate_images, validate_labels
from ssl_fed.plugins import import_package_modules, import_plugins

logger = logging.getLogger("ssl_fed.data")


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


register_data_format("digits")(load_digits_splits)
register_data_format("fashion_mnist")(load_fashion_mnist)
register_path_format("folder")(load_folder)
register_path_format("npz")(load_npz)
register_path_format("idx")(load_idx)
import_package_modules("ssl_fed.data.formats", [str(Path(__file__).with_name("formats"))])
import_plugins()


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
