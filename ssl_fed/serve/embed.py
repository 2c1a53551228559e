"""Embed a site's images with the released encoder: ``features.npy`` plus a row index.

Images are read with training's own loaders and checks (:mod:`ssl_fed.data`): the same decode,
resize and channel conversion as ``data.name=folder`` / ``npz`` / ``idx``, the same range and
NaN checks, so a feature row is what ``features()`` gives the image during evaluation. A folder
is streamed ``chunk`` files at a time and features are appended to disk as they come, so a
folder larger than memory works (memory is O(chunk)); an ``.npz`` or IDX file is one array,
loaded whole. The output is written to a temporary file and renamed at the end, so a failure
never leaves a half-written or clobbered ``features.npy``.

The index (``<out stem>.index.csv``) names each row's source: the file's path relative to the
folder (whose class sub-folder is its label), or the row of the ``.npz`` / IDX file and its
label.

Notes
-----
Privacy: embedding runs at the site on its own data and writes only to the site's disk. The
features are computed from private images without noise: they are site data, not a release,
and nothing here sends them anywhere.
"""

from __future__ import annotations

import csv
import gzip
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ssl_fed.config import ConfigError, DataConfig
from ssl_fed.data import DataError, validate_images
from ssl_fed.data.folder import _list_files, _read_image
from ssl_fed.data.idx import DTYPES, load_idx
from ssl_fed.data.loaders import load_npz
from ssl_fed.serve.runtime import Batch, ServedModel

Chunk = tuple[Batch, list[tuple[str, str]]]
"""A batch of images and, per image, ``(source, label)`` for the index."""


@dataclass
class EmbedSummary:
    """What ``embed`` wrote: row count, feature width, files, and skipped inputs."""

    rows: int = 0
    dim: int = 0
    features: Path = Path()
    index: Path = Path()
    skipped: list[Path] = field(default_factory=list)


def _read(file: Path, mode: str, size: int, on_bad_file: str) -> Batch | None:
    try:
        return _read_image(file, mode, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        if on_bad_file != "skip":
            raise DataError(
                f"cannot read image {file}: {err}. Repair or remove the file, or pass "
                "--on-bad-file skip to skip unreadable files (they are counted)."
            ) from err
        return None


def folder_chunks(
    root: Path, model: ServedModel, chunk: int, on_bad_file: str, summary: EmbedSummary
) -> Iterator[Chunk]:
    """Decode ``root``'s images ``chunk`` files at a time, as ``data.name=folder`` does."""
    files, labels, classes = _list_files(root)
    if not files:
        raise DataError(f"{root} holds no PNG/JPEG images; nothing to embed.")
    mode = "L" if model.channels == 1 else "RGB"
    progress = tqdm(total=len(files), unit="img", disable=not sys.stderr.isatty())
    for start in range(0, len(files), chunk):
        arrays, names = [], []
        for i, file in enumerate(files[start : start + chunk], start):
            pixels = _read(file, mode, model.image_size, on_bad_file)
            if pixels is None:
                summary.skipped.append(file)
                continue
            arrays.append(pixels.transpose(2, 0, 1))
            names.append((file.relative_to(root).as_posix(), classes[labels[i]] if labels else ""))
        progress.update(min(chunk, len(files) - start))
        if arrays:
            batch = np.ascontiguousarray(np.stack(arrays), dtype=np.float32)
            validate_images(torch.from_numpy(batch), f"{root} ({names[0][0]} ...)")
            yield batch, names
    progress.close()


def is_idx(path: Path) -> bool:
    """Whether ``path`` is an IDX file: its first bytes are the magic number (gzip or not).

    The content decides, not the name, as for ``data=idx`` (:mod:`ssl_fed.data.idx`).
    """
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as unzipped:
            try:
                head = unzipped.read(4)
            except (OSError, EOFError):
                return False
    return len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in DTYPES and 1 <= head[3] <= 4


def npz_chunks(path: Path, model: ServedModel, chunk: int) -> Iterator[Chunk]:
    """Load an ``.npz`` (or IDX images file) as training's loader does and yield it in chunks.

    ``data=npz`` / ``data=idx`` validate and resize the same way; an IDX file's labels come
    from its paired labels file (:func:`ssl_fed.data.idx.labels_file_for`), if there is one.
    """
    fmt = "npz" if path.suffix == ".npz" else "idx"
    cfg = DataConfig(name=fmt, image_size=model.image_size, channels=model.channels)
    data = load_npz(cfg, str(path)) if fmt == "npz" else load_idx(cfg, str(path))
    labels = data.labels.tolist() if data.labels is not None else None
    for start in tqdm(range(0, len(data), chunk), unit="chunk", disable=not sys.stderr.isatty()):
        rows = range(start, min(start + chunk, len(data)))
        names = [(str(r), "" if labels is None else str(labels[r])) for r in rows]
        yield data.images[start : rows.stop].numpy(), names


class FeatureWriter:
    """Append float32 rows to a raw temporary file; ``finish`` turns it into ``out`` (``.npy``)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.raw = out.with_name(f".{out.name}.rows.tmp")
        self.handle = self.raw.open("wb")
        self.rows = 0
        self.dim = -1

    def append(self, features: Batch) -> None:
        """Write one batch of ``[B, D]`` rows."""
        self.dim = int(features.shape[1])
        self.handle.write(np.ascontiguousarray(features, dtype="<f4").tobytes())
        self.rows += int(features.shape[0])

    def finish(self) -> None:
        """Write the ``.npy`` header and the rows to a temporary file, then rename it to ``out``."""
        self.handle.close()
        part = self.out.with_name(f".{self.out.name}.tmp")
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim)}
        with part.open("wb") as dst, self.raw.open("rb") as src:
            np.lib.format.write_array_header_2_0(dst, header)
            while block := src.read(1 << 24):
                dst.write(block)
        os.replace(part, self.out)
        self.raw.unlink()

    def abort(self) -> None:
        """Remove the temporary file (``out`` is untouched)."""
        self.handle.close()
        self.raw.unlink(missing_ok=True)


def embed(
    model: ServedModel,
    data: Path,
    out: Path,
    *,
    batch_size: int = 256,
    on_bad_file: str = "error",
) -> EmbedSummary:
    """Embed every image of ``data`` (a folder, ``.npz`` or IDX file) with ``model`` into ``out``.

    Raises
    ------
    ConfigError
        A bad ``batch_size`` / ``on_bad_file`` / ``out``.
    DataError
        Missing or unusable data; an unreadable image (named) unless ``on_bad_file="skip"``.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: use a positive number of images")
    if on_bad_file not in ("error", "skip"):
        raise ConfigError(f"--on-bad-file {on_bad_file}: use error or skip")
    if out.suffix != ".npy":
        raise ConfigError(f"--out {out}: name the feature file *.npy (numpy.load reads it)")
    summary = EmbedSummary(features=out, index=out.with_suffix(".index.csv"))
    if data.is_dir():
        chunks = folder_chunks(data, model, batch_size, on_bad_file, summary)
    elif data.is_file() and (data.suffix == ".npz" or is_idx(data)):
        chunks = npz_chunks(data, model, batch_size)
    else:
        raise DataError(
            f"--data {data}: give a folder of PNG/JPEG images, an .npz file or an IDX images file"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = FeatureWriter(out)
    names: list[tuple[str, str]] = []
    try:
        for images, batch_names in chunks:
            writer.append(model.run(images))
            names += batch_names
        if not names:
            raise DataError(f"{data}: every image was unreadable and skipped; nothing to embed.")
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    _write_index(summary.index, names)
    summary.rows, summary.dim = writer.rows, writer.dim
    return summary


def _write_index(path: Path, names: list[tuple[str, str]]) -> None:
    part = path.with_name(f".{path.name}.tmp")
    with part.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "source", "label"])
        writer.writerows((i, source, label) for i, (source, label) in enumerate(names))
    os.replace(part, path)
