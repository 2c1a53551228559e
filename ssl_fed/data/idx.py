"""MNIST-format IDX files (``data=idx``) and Fashion-MNIST (``data=fashion_mnist``).

The IDX format (LeCun et al., the MNIST database; the same layout Fashion-MNIST uses, Xiao,
Rasul & Vollgraf, arXiv 1708.07747) is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``,
then ``ndim`` big-endian uint32 dimensions, then the values, big-endian, row-major. A file may
be gzipped; that is detected from its first two bytes (``1f 8b``), not from its name.

``data=idx``
    ``data.path`` is an images file ``[N, H, W]`` (or ``[N, H, W, C]`` with ``C`` in {1, 3});
    ``data.test_path`` optionally a second one for the test split. Labels are found by a naming
    rule (:func:`labels_file_for`): the last ``images`` in the file name becomes ``labels`` and
    ``idx3``/``idx4`` becomes ``idx1``, with or without ``.gz`` (so
    ``train-images-idx3-ubyte.gz`` pairs with ``train-labels-idx1-ubyte.gz``). A training file
    without a labels file is unlabelled; a test file must have one.
``data=fashion_mnist``
    ``data.path`` is a directory holding the four standard files (default
    ``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` installs
    them). The 60,000 training images are what sites hold; the official 10,000-image test split
    is the probe's test set.

Every file is read whole and checked before any tensor is built (magic number, dtype code,
dimensions, length, label count), so nothing is ever partially loaded: a bad file raises one
:class:`DataError` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import DataSplits, ImageDataset
from ssl_fed.data.validation import DataError, validate_images, validate_labels

DTYPES: dict[int, np.dtype[np.generic]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX dtype codes (third magic byte) and their big-endian NumPy dtypes."""

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_INTEGER_CODES = (0x08, 0x09, 0x0B, 0x0C)
_FIX = "re-export it as MNIST-format IDX (magic 0x0000 <dtype> <ndim>, big-endian dims)"


def _read_bytes(file: Path) -> bytes:
    """Return the file's (decompressed, when gzipped) bytes; a bad file raises DataError."""
    if not file.is_file():
        raise DataError(f"{file} does not exist; point data.path / data.test_path at IDX files.")
    try:
        raw = file.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {file}: {err}. Copy the file again (it is damaged).") from err


def read_idx(path: str | Path) -> npt.NDArray[np.generic]:
    """Read one IDX file (gzipped or not) into a native-endian array of its stored shape.

    Raises
    ------
    DataError
        If the file is missing or unreadable, the magic number is wrong, the dtype code is
        unknown, a dimension is zero, or the payload is shorter (truncated) or longer than the
        dimensions say. Nothing is returned for a bad file.
    """
    file = Path(path)
    data = _read_bytes(file)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{file}: not an IDX file (bad magic number {data[:4].hex()}); {_FIX}.")
    code, ndim = data[2], data[3]
    if code not in DTYPES:
        raise DataError(
            f"{file}: unknown IDX dtype code 0x{code:02x} (valid: "
            f"{', '.join(f'0x{c:02x}' for c in DTYPES)}); {_FIX}."
        )
    header = 4 + 4 * ndim
    if ndim < 1 or len(data) < header:
        raise DataError(f"{file}: header is truncated or has {ndim} dimensions; {_FIX}.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if 0 in dims:
        raise DataError(f"{file}: a dimension is zero {dims}; the file holds no data.")
    dtype = DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{file}: {state} ({len(data)} bytes for dimensions {dims}, expected {expected}); "
            "copy or export the file again."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: npt.ArrayLike, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``compress``, default: the name ends .gz).

    The inverse of :func:`read_idx`: used by the benchmark to store a subset of a dataset in
    the same format, and by tests to write tiny files.
    """
    file = Path(path)
    values = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
    native = values.dtype.newbyteorder("=")
    if native not in codes:
        raise DataError(
            f"cannot store dtype {values.dtype} in IDX; use one of uint8, int8, "
            "int16, int32, float32, float64."
        )
    code = codes[native]
    header = bytes([0, 0, code, values.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in values.shape
    )
    payload = header + values.astype(DTYPES[code]).tobytes()
    gz = file.name.endswith(".gz") if compress is None else compress
    file.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return file


def _images_tensor(array: npt.NDArray[np.generic], file: Path) -> torch.Tensor:
    """Convert an IDX images array to float ``[N, C, H, W]`` in ``[0, 1]``, or raise."""
    if array.ndim == 4 and array.shape[3] in (1, 3):
        array = np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    elif array.ndim == 3:
        array = array[:, None]
    else:
        raise DataError(
            f"{file}: images have shape {array.shape}; expected [N, H, W] or [N, H, W, C] with "
            "C in {1, 3}. Is data.path a labels file? Point it at the images file."
        )
    if array.dtype == np.uint8:
        return torch.from_numpy(array.astype(np.float32) / 255.0)
    if np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(array.astype(np.float32))
    raise DataError(
        f"{file}: images have dtype {array.dtype}; store unsigned bytes (0x08, scaled by "
        "1/255) or floats in [0, 1] (0x0D/0x0E)."
    )


def read_idx_labels(path: str | Path, num_images: int) -> torch.Tensor:
    """Read an IDX labels file ``[N]`` of integers and check it matches ``num_images``."""
    file = Path(path)
    array = read_idx(file)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(
            f"{file}: labels have shape {array.shape} and dtype {array.dtype}; expected [N] "
            f"integers (dtype codes {', '.join(f'0x{c:02x}' for c in _INTEGER_CODES)})."
        )
    labels = torch.from_numpy(array.astype(np.int64))
    validate_labels(labels, num_images, str(file))
    return labels


def labels_file_for(images: str | Path) -> Path | None:
    """Return the labels file that pairs with an images file by the naming rule, if it exists.

    The last ``images`` in the name becomes ``labels`` and ``idx3``/``idx4`` becomes ``idx1``;
    both the gzipped and the plain name are tried (``.gz`` kept first).
    """
    file = Path(images)
    name = re.sub(r"idx[34]", "idx1", file.name)
    head, sep, tail = name.rpartition("images")
    if not sep:
        return None
    stem = (head + "labels" + tail).removesuffix(".gz")
    for candidate in (file.with_name(stem + ".gz"), file.with_name(stem)):
        if candidate.is_file() and candidate.name != file.name:
            return candidate
    return None


def _load_images(cfg: DataConfig, file: Path) -> torch.Tensor:
    """Read, validate, resize and convert one IDX images file like the other loaders do.

    The resize/channel helpers live in :mod:`ssl_fed.data.loaders`, which registers this
    module's loaders, so they are imported here at call time to keep the import graph acyclic.
    """
    from ssl_fed.data.loaders import convert_channels, resize_images

    images = _images_tensor(read_idx(file), file)
    validate_images(images, str(file))
    return convert_channels(resize_images(images, cfg.image_size), cfg.channels).contiguous()


def load_idx(cfg: DataConfig, path: str) -> ImageDataset:
    """Load an IDX images file (``data=idx``) and, by :func:`labels_file_for`, its labels."""
    file = Path(path)
    images = _load_images(cfg, file)
    label_file = labels_file_for(file)
    labels = None if label_file is None else read_idx_labels(label_file, int(images.shape[0]))
    return ImageDataset(images, labels, str(file))


def _fashion_file(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Fashion-MNIST file {stem}(.gz) not found in data.path={directory}; install it with "
        "`apt-get install dataset-fashion-mnist` (as root) or set data.path to a directory "
        "holding the four standard IDX files."
    )


def load_fashion_mnist(cfg: DataConfig) -> DataSplits:
    """Load Fashion-MNIST: the 60,000 training images (sites) and the official 10,000 test.

    Both splits are checked in full (all four files located and read) before either is
    returned, so a missing or damaged test file never leaves a half-loaded dataset behind.
    """
    directory = Path(cfg.path or FASHION_MNIST_DIR)
    files = {
        split: (_fashion_file(directory, img), _fashion_file(directory, lab))
        for split, (img, lab) in FASHION_MNIST_FILES.items()
    }
    loaded: dict[str, ImageDataset] = {}
    for split, (img, lab) in files.items():
        images = _load_images(cfg, img)
        labels = read_idx_labels(lab, int(images.shape[0]))
        loaded[split] = ImageDataset(images, labels, f"fashion_mnist:{split}")
    return DataSplits(loaded["train"], loaded["test"])
