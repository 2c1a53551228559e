"""Check an ``.npz`` archive's array sizes *before* numpy allocates them.

``np.load(...)[key]`` allocates the array its ``.npy`` header declares before it reads a byte of
data, so a forged header (a 16 TiB shape over a few bytes of data) ends in a ``MemoryError``
traceback instead of a clear error. Each member's header is read on its own and the size it
declares must equal the bytes the archive stores for it, and fit in half of this machine's memory.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from ssl_fed.data.validation import DataError


def memory_limit() -> int:
    """Half of this machine's physical memory, in bytes (the largest array a site may load)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _declared(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)  # type: ignore[no-untyped-call]
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(fh)  # type: ignore[no-untyped-call]
    return tuple(shape), np.dtype(dtype)


def check_npz_sizes(file: Path, limit: int | None = None) -> None:
    """Raise :class:`DataError` naming ``file`` unless every array's declared size is honest.

    A file that is not a zip archive is left to ``np.load`` (which reports it).
    """
    if not zipfile.is_zipfile(file):
        return
    cap = memory_limit() if limit is None else limit
    try:
        with zipfile.ZipFile(file) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    shape, dtype = _declared(fh)
                    header = fh.tell()
                claimed = math.prod(shape) * dtype.itemsize
                stored = info.file_size - header
                if claimed != stored or claimed > cap:
                    raise DataError(
                        f"{file}: array {info.filename[:-4]!r} declares shape {shape} {dtype} "
                        f"({claimed} bytes) but the archive stores {stored} bytes (limit {cap}): "
                        "the file is corrupt or forged; write it again with numpy.savez"
                    )
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataError(f"cannot read {file} as .npz: {err}. Write it with numpy.savez.") from None
