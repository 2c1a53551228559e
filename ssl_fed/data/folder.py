"""Load a site's images from a folder of PNG/JPEG files.

Two layouts are accepted, mirroring torchvision's ``ImageFolder`` so sites can reuse what they
have:

- **labelled**: one level of class sub-folders (``root/cat/1.png``, ``root/dog/7.jpg``); the
  sorted folder names give labels ``0..K-1``;
- **unlabelled**: images directly in ``root``; ``labels`` is ``None`` (pretraining needs none);
- **labelled, by person**: ``root/<class>/<person>/<files>``; each file's person id is its
  person folder's name (the same name under two classes is one person).

Person ids (:mod:`ssl_fed.data.persons`) can also come from ``data.manifest`` (``file,person
[,label]``), which must list exactly the image files of ``data.path``. ``root/<x>/<files>`` is
read as classes unless ``data.person_folders=true`` says its folders are persons
(``DIR/<person>/<files>``, unlabelled): ``x`` could be a class or a person, so it is never
guessed. A class folder mixing image files and sub-folders is refused as ambiguous.

A folder holding both is refused rather than guessed at: silently dropping either half would
change what the site trains on. Files are sorted so the same folder always gives the same tensor
(the partitioners and train/test split are seeded on positions).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ssl_fed.config import DataConfig
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.data.persons import check_person_id, read_manifest
from ssl_fed.data.validation import DataError, validate_images, validate_labels

logger = logging.getLogger("ssl_fed.data")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L"})


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _images_in(folder: Path) -> tuple[list[Path], list[str] | None]:
    """Return a class folder's images (directly inside, or in person sub-folders) and persons."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if _is_image(p)]
    people = [p for p in entries if p.is_dir()]
    if files and people:
        raise DataError(
            f"{folder} mixes image files with sub-folders (e.g. {people[0].name}): the layout is "
            "ambiguous. Use DIR/<class>/<files> or DIR/<class>/<person>/<files>, not both."
        )
    if not people:
        return files, None
    found: list[Path] = []
    persons: list[str] = []
    for person_dir in people:
        pid = check_person_id(person_dir.name, f"person folder {person_dir}")
        mine = sorted(p for p in person_dir.iterdir() if _is_image(p))
        if not mine:
            raise DataError(f"person folder {person_dir} holds no PNG/JPEG images; remove it")
        found += mine
        persons += [pid] * len(mine)
    return found, persons


Listing = tuple[list[Path], list[int], list[str], list[str] | None]


def _list_files(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Return the sorted image files, their labels (empty if unlabelled) and the class names."""
    files, labels, classes, _ = list_layout(root)
    return files, labels, classes


def list_layout(root: Path) -> Listing:
    """Return the sorted image files, labels (empty if unlabelled), class names and person ids."""
    if not root.is_dir():
        raise DataError(
            f"{root} is missing or not a directory; point data.path (or data.test_path) at "
            "a folder of PNG/JPEG images (or of class sub-folders holding them)."
        )
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    top = [p for p in entries if _is_image(p)]
    classes = [p for p in entries if p.is_dir()]
    if top and classes:
        raise DataError(
            f"{root} mixes {len(top)} image file(s) at its top level with {len(classes)} "
            f"sub-folder(s) (e.g. {classes[0].name}). Use either class "
            "sub-folders only (labelled) or image files only (unlabelled)."
        )
    if not classes:
        return top, [], [], None
    files: list[Path] = []
    labels: list[int] = []
    persons: list[str] = []
    layouts: set[bool] = set()
    for label, folder in enumerate(classes):
        found, people = _images_in(folder)
        if not found:
            raise DataError(
                f"class folder {folder} holds no PNG/JPEG images; add images or remove it "
                "(every sub-folder of data.path is a class)."
            )
        layouts.add(people is not None)
        if len(layouts) > 1:
            raise DataError(
                f"{root}: class folder {folder.name} and another one use different layouts "
                "(person sub-folders in some, image files in others); use one layout throughout."
            )
        files += found
        labels += [label] * len(found)
        persons += people or []
    return files, labels, [c.name for c in classes], (persons if persons else None)


def person_layout(root: Path) -> Listing:
    """``DIR/<person>/<files>`` (``data.person_folders=true``): top folders are persons, no labels.

    Anything else (images at the top, or sub-folders inside a person folder, which would be
    ``DIR/<class>/<person>/<files>``) is refused as ambiguous rather than guessed.
    """
    files, labels, classes, persons = list_layout(root)
    if not classes or persons is not None:
        shape = "images at its top level" if not classes else "DIR/<class>/<person>/<files>"
        raise DataError(
            f"{root}: data.person_folders=true expects DIR/<person>/<files>, but the folder "
            f"holds {shape}; fix the layout, or set data.person_folders=false"
        )
    by_label = [check_person_id(classes[k], f"person folder {root / classes[k]}") for k in labels]
    return files, [], [], by_label


def _apply_manifest(root: Path, manifest: str, listing: Listing) -> Listing:
    """Person ids (and labels, if given) from ``data.manifest``, checked against the folder."""
    files, labels, classes, _ = listing
    rows = read_manifest(manifest)
    names = [f.relative_to(root).as_posix() for f in files]
    missing = sorted(set(rows) - set(names))
    if missing:
        raise DataError(
            f"{manifest} row {rows[missing[0]][2]}: file {missing[0]!r} is not an image under "
            f"{root}; fix the row or add the file"
        )
    unlisted = [n for n in names if n not in rows]
    if unlisted:
        raise DataError(
            f"{root / unlisted[0]} is in no person: {manifest} does not list it; add a row "
            f"{unlisted[0]},<person> or remove the file"
        )
    given = [rows[n][1] for n in names]
    if all(g is None for g in given):
        return files, labels, classes, [rows[n][0] for n in names]
    if any(g is None for g in given):
        first = next(n for n in names if rows[n][1] is None)
        raise DataError(f"{manifest} row {rows[first][2]}: label is empty; label every row or none")
    classes = sorted({str(g) for g in given})
    return files, [classes.index(str(g)) for g in given], classes, [rows[n][0] for n in names]


def _read_image(path: Path, mode: str | None, size: int) -> np.ndarray:
    """Decode one file to float32 ``[size, size, C]`` in ``[0, 1]``.

    ``mode`` is ``"L"``/``"RGB"`` to force channels, or ``None`` for the file's natural one
    (``"L"`` for grayscale modes, else ``"RGB"``). ``.load()`` forces a full decode, so truncated
    files fail here rather than later. 16-bit grayscale is scaled by 65535, since PIL's ``"L"``
    conversion would clip it.
    """
    with Image.open(path) as im:
        im.load()
        target = mode or ("L" if im.mode in _GRAY_MODES else "RGB")
        if im.mode in _WIDE_MODES:
            wide = np.asarray(im, dtype=np.float32) / 65535.0
            small = Image.fromarray(wide).resize((size, size), Image.Resampling.BILINEAR)
            gray = np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)[..., None]
            return np.repeat(gray, 3, axis=2) if target == "RGB" else gray
        resized = im.convert(target).resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32) / 255.0
        return pixels[..., None] if pixels.ndim == 2 else pixels


def load_folder(cfg: DataConfig, path: str) -> ImageDataset:
    """Load every PNG/JPEG under ``path`` into one validated :class:`ImageDataset`.

    Parameters
    ----------
    cfg : DataConfig
        Uses ``image_size`` (every image is resized to a square of that side, bilinear),
        ``channels`` (1 or 3 forces grayscale/RGB; ``None`` keeps 1 only if every image is
        grayscale, since mixing would need a per-image channel count) and ``on_bad_file``.
    path : str
        The folder (``data.path`` or ``data.test_path``).

    Returns
    -------
    ImageDataset
        Images ``[N, C, S, S]`` in ``[0, 1]``; labels from class sub-folders, else ``None``.

    Raises
    ------
    DataError
        On a missing/mixed/empty folder, or an unreadable file unless ``on_bad_file=skip``
        (then it is skipped and a warning on logger ``ssl_fed.data`` lists the skipped files).
    """
    root = Path(path)
    main = path == cfg.path
    listing = person_layout(root) if cfg.person_folders and main else list_layout(root)
    if cfg.manifest is not None and main:
        listing = _apply_manifest(root, cfg.manifest, listing)
    files, labels, _, persons = listing
    mode = {1: "L", 3: "RGB", None: None}[cfg.channels]
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[Path] = []
    for i, file in enumerate(files):
        try:
            arrays.append(_read_image(file, mode, cfg.image_size))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            if cfg.on_bad_file != "skip":
                raise DataError(
                    f"cannot read image {file}: {err}. Repair or remove the file, or set "
                    "data.on_bad_file=skip to skip unreadable files."
                ) from err
            skipped.append(file)
            continue
        kept.append(i)
    if skipped:
        names = ", ".join(p.name for p in skipped[:5])
        logger.warning(
            "skipped %d unreadable image file(s) in %s (first: %s)", len(skipped), root, names
        )
    channels = cfg.channels or max((a.shape[2] for a in arrays), default=1)
    arrays = [np.repeat(a, 3, axis=2) if a.shape[2] < channels else a for a in arrays]
    if arrays:
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.empty(0, channels, cfg.image_size, cfg.image_size)
    validate_images(images, str(root))
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.int64) if labels else None
    validate_labels(label_tensor, int(images.shape[0]), str(root))
    kept_persons = tuple(persons[i] for i in kept) if persons is not None else None
    return ImageDataset(images.float(), label_tensor, str(root), kept_persons)
