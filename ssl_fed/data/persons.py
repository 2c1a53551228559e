r"""Person ids: which of a site's images belong to one person (the unit of ``privacy.unit=person``).

Person ids come only from the site's own data and never leave it (the guard refuses any count):

- a **manifest** ``data.manifest=PATH.csv`` with header ``file,person[,label]``: one row per image
  file, ``file`` relative to ``data.path`` (folder data);
- the folder layouts ``DIR/<class>/<person>/<files>``, and ``DIR/<person>/<files>`` when
  ``data.person_folders=true`` says so (see :mod:`ssl_fed.data.folder`);
- an ``.npz`` archive's optional ``persons`` array aligned with ``images``;
- **synthetic** ids for the digits / Fashion-MNIST benchmarks (``data.synthetic_persons=M``): the
  images are shuffled with the public ``data.seed`` and cut into persons of ``M`` images. These
  persons are *synthetic* (a benchmark device to measure person-level DP, not real people).

A person id is 1..128 characters from ``[A-Za-z0-9_.-]``, not starting with ``.``: an id is only
ever a label, and refusing path characters (``/``, ``\``, ``..``) keeps it from being used as a
path anywhere downstream.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.validation import DataError

PERSON_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


def check_person_id(person: str, where: str) -> str:
    """Return ``person`` stripped, or raise :class:`DataError` naming ``where`` (file and row)."""
    pid = person.strip()
    if not pid:
        raise DataError(f"{where}: the person id is empty; give every image a person id")
    if not PERSON_ID.fullmatch(pid):
        raise DataError(
            f"{where}: person id {pid!r} is invalid: use 1..128 characters from A-Z a-z 0-9 _ . - "
            "(no path characters such as / or \\, not starting with '.')"
        )
    return pid


ManifestRows = dict[str, tuple[str, str | None, int]]


def read_manifest(path: str | Path) -> ManifestRows:
    """Read a ``file,person[,label]`` CSV into ``{file: (person, label or None, row number)}``.

    Raises
    ------
    DataError
        Naming the manifest and row: a missing file or header, an empty or invalid person id, an
        empty or repeated file name, or a file name that leaves ``data.path`` (absolute or ``..``).
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data.manifest={file} does not exist; point it at a file,person CSV")
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if fields[:2] != ["file", "person"] or not set(fields) <= {"file", "person", "label"}:
            raise DataError(
                f"{file}: the header is {fields}; the manifest's header must be "
                "file,person or file,person,label"
            )
        rows: ManifestRows = {}
        for number, row in enumerate(reader, start=2):
            where = f"{file} row {number}"
            name = (row.get("file") or "").strip()
            if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise DataError(f"{where}: file {name!r} must be a path relative to data.path")
            if name in rows:
                raise DataError(f"{where}: file {name!r} is listed twice; list each file once")
            label = (row.get("label") or "").strip() or None
            rows[name] = (check_person_id(row.get("person") or "", where), label, number)
    if not rows:
        raise DataError(f"{file}: the manifest lists no files")
    return rows


def npz_persons(
    arrays: dict[str, NDArray[np.generic]], file: str, n: int
) -> tuple[str, ...] | None:
    """Return the archive's optional ``persons`` array (``[N]`` ints or strings), checked."""
    if "persons" not in arrays:
        return None
    raw = np.asarray(arrays["persons"])
    if raw.shape != (n,) or raw.dtype.kind not in "iuU":
        raise DataError(
            f"{file}: 'persons' has shape {raw.shape} and dtype {raw.dtype}; store one integer "
            f"or string person id per image, shape ({n},)"
        )
    return tuple(check_person_id(str(p), f"{file} ['persons'][{i}]") for i, p in enumerate(raw))


def synthetic_persons(n: int, per_person: int, seed: int) -> tuple[str, ...]:
    """Synthetic ids: shuffle positions with the public ``seed``, cut into persons of ``M``.

    For benchmarks only (digits, Fashion-MNIST): each synthetic person owns a fixed random set
    of ``per_person`` images (the last one fewer when ``M`` does not divide ``n``).
    """
    order = np.random.default_rng(seed).permutation(n)
    ids = [""] * n
    for rank, position in enumerate(order.tolist()):
        ids[position] = f"synthetic-{rank // per_person:06d}"
    return tuple(ids)


def with_persons(data: ImageDataset, cfg: DataConfig) -> ImageDataset:
    """Return ``data`` with person ids: its own, else synthetic ones when configured.

    Raises
    ------
    DataError
        When no person ids exist for a ``privacy.unit=person`` run.
    """
    if data.persons is not None:
        return data
    if cfg.synthetic_persons is not None:
        persons = synthetic_persons(len(data), cfg.synthetic_persons, cfg.seed)
        return ImageDataset(data.images, data.labels, data.source, persons)
    raise DataError(
        f"{data.source}: privacy.unit=person needs person ids and this data has none. Give them "
        "with data.manifest=FILE.csv (columns file,person[,label]), the folder layout "
        "DIR/<class>/<person>/<files>, DIR/<person>/<files> with data.person_folders=true, a "
        "'persons' array in the .npz, or, for benchmarks only, data.synthetic_persons=M. "
        "(DIR/<x>/<files> is read as classes unless data.person_folders=true: x could be a class "
        "or a person, so it is not guessed.)"
    )


def person_codes(persons: tuple[str, ...]) -> tuple[NDArray[np.int64], list[str]]:
    """Codes ``0..P-1`` per image (sorted person ids) and the ids themselves."""
    names = sorted(set(persons))
    code = {name: i for i, name in enumerate(names)}
    return np.array([code[p] for p in persons], dtype=np.int64), names
