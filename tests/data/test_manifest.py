"""Person ids from the site's own data: manifest, folder layout, npz array, synthetic ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_fed.cli import main
from ssl_fed.config import DataConfig
from ssl_fed.data import DataError, ImageDataset
from ssl_fed.data.folder import load_folder
from ssl_fed.data.loaders import load_npz
from ssl_fed.data.persons import synthetic_persons, with_persons
from tests.helpers import images


def _save(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def _cfg(path: Path, manifest: Path | None = None) -> DataConfig:
    return DataConfig(
        name="folder", path=str(path), image_size=8, manifest=str(manifest) if manifest else None
    )


def _manifest(tmp_path: Path, rows: str) -> Path:
    file = tmp_path / "manifest.csv"
    file.write_text(rows)
    return file


def _flat(tmp_path: Path, n: int = 4) -> Path:
    root = tmp_path / "site"
    for i in range(n):
        _save(root / f"{i}.png", 10 * i)
    return root


def test_a_manifest_gives_each_file_its_person_and_label(tmp_path: Path) -> None:
    # Prepare: 4 flat files; persons p1 (0, 2) and p2 (1, 3), labels by the manifest
    root = _flat(tmp_path)
    man = _manifest(
        tmp_path, "file,person,label\n0.png,p1,cat\n1.png,p2,dog\n2.png,p1,dog\n3.png,p2,cat\n"
    )

    # Execute
    data = load_folder(_cfg(root, man), str(root))

    # Assert: files in sorted order, persons and labels (sorted class names) aligned with them
    assert data.persons == ("p1", "p2", "p1", "p2")
    assert data.labels is not None and data.labels.tolist() == [0, 1, 1, 0]
    assert abs(float(data.images[3].mean()) - 30 / 255) < 1e-3


def test_the_class_person_layout_gives_persons_from_folder_names(tmp_path: Path) -> None:
    # Prepare: DIR/<class>/<person>/<files>; person "ann" appears under both classes
    root = tmp_path / "site"
    _save(root / "a" / "ann" / "1.png", 1)
    _save(root / "a" / "bob" / "1.png", 2)
    _save(root / "a" / "bob" / "2.png", 3)
    _save(root / "b" / "ann" / "9.png", 4)

    # Execute
    data = load_folder(_cfg(root), str(root))

    # Assert
    assert data.persons == ("ann", "bob", "bob", "ann")
    assert data.labels is not None and data.labels.tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "file,person\n0.png,p\n1.png,p\n2.png,p\n3.png,p\n9.png,q\n",
            r"row 6: file '9.png' is not",
        ),
        ("file,person\n0.png,p\n1.png,p\n2.png,p\n", r"3.png is in no person"),
        ("file,person\n0.png,p\n1.png,../etc\n2.png,p\n3.png,p\n", r"row 3: person id '../etc'"),
        ("file,person\n0.png,p\n1.png,a/b\n2.png,p\n3.png,p\n", r"row 3: person id 'a/b'"),
        ("file,person\n0.png,p\n1.png,\n2.png,p\n3.png,p\n", r"row 3: the person id is empty"),
        ("file,person\n0.png,p\n0.png,q\n", r"row 3: file '0.png' is listed twice"),
        ("name,person\n0.png,p\n", r"header"),
        ("file,person\n", r"lists no files"),
    ],
)
def test_bad_manifests_are_refused_naming_the_row_or_file(
    tmp_path: Path, rows: str, message: str
) -> None:
    # Prepare
    root = _flat(tmp_path)
    man = _manifest(tmp_path, rows)

    # Execute / Assert: one DataError that names the row or file
    with pytest.raises(DataError, match=message):
        load_folder(_cfg(root, man), str(root))


def test_an_empty_person_folder_and_a_mixed_layout_are_refused(tmp_path: Path) -> None:
    # Prepare: an empty person folder
    root = tmp_path / "empty"
    _save(root / "a" / "ann" / "1.png", 1)
    (root / "a" / "bob").mkdir()
    # Execute / Assert
    with pytest.raises(DataError, match=r"person folder .*bob holds no PNG"):
        load_folder(_cfg(root), str(root))

    # Prepare: one class folder with persons, one with files
    mixed = tmp_path / "mixed"
    _save(mixed / "a" / "ann" / "1.png", 1)
    _save(mixed / "b" / "2.png", 1)
    with pytest.raises(DataError, match="different layouts"):
        load_folder(_cfg(mixed), str(mixed))

    # Prepare: a person folder with a path-like name is impossible, but a leading dot is hidden;
    # a name with a space is refused
    spaced = tmp_path / "spaced"
    _save(spaced / "a" / "ann lee" / "1.png", 1)
    with pytest.raises(DataError, match="person id 'ann lee' is invalid"):
        load_folder(_cfg(spaced), str(spaced))


def test_npz_persons_are_read_and_checked(tmp_path: Path) -> None:
    # Prepare
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    pixels = np.zeros((3, 8, 8), np.uint8)
    np.savez(good, images=pixels, persons=np.array([7, 7, 8]))
    np.savez(bad, images=pixels, persons=np.array(["a", "b/c", "d"]))
    cfg = DataConfig(name="npz", path=str(good), image_size=8)

    # Execute / Assert
    assert load_npz(cfg, str(good)).persons == ("7", "7", "8")
    with pytest.raises(DataError, match=r"\['persons'\]\[1\]: person id 'b/c'"):
        load_npz(cfg, str(bad))


def test_synthetic_persons_own_fixed_random_sets_of_m_images() -> None:
    # Execute
    ids = synthetic_persons(23, 5, seed=3)

    # Assert: 5 persons, four of 5 images and one of 3; the same seed gives the same sets
    counts = sorted(ids.count(p) for p in set(ids))
    assert counts == [3, 5, 5, 5, 5]
    assert ids == synthetic_persons(23, 5, seed=3) and ids != synthetic_persons(23, 5, seed=4)


def test_person_runs_without_person_ids_are_refused_with_the_fixes() -> None:
    data = ImageDataset(images(4), None, "plain")
    with pytest.raises(DataError, match=r"data\.manifest"):
        with_persons(data, DataConfig())
    assert with_persons(data, DataConfig(synthetic_persons=2)).persons is not None


def test_train_local_without_person_ids_exits_2_before_writing_anything(tmp_path: Path) -> None:
    # Execute
    code = main(["train-local", "privacy.unit=person", f"out={tmp_path / 'run'}"])

    # Assert: one error, no output directory, no ledger
    assert code == 2
    assert not (tmp_path / "run").exists()


def test_person_folders_read_dir_person_files_and_refuse_other_layouts(tmp_path: Path) -> None:
    # Prepare: DIR/<person>/<files>
    root = tmp_path / "site"
    _save(root / "ann" / "1.png", 1)
    _save(root / "ann" / "2.png", 2)
    _save(root / "bob" / "1.png", 3)
    flagged = DataConfig(name="folder", path=str(root), image_size=8, person_folders=True)

    # Execute
    persons = load_folder(flagged, str(root))
    classes = load_folder(_cfg(root), str(root))

    # Assert: with the flag, persons and no labels; without it, the same folders are classes
    assert persons.persons == ("ann", "ann", "bob") and persons.labels is None
    assert classes.persons is None and classes.labels is not None

    # Prepare / Execute / Assert: the flag on a class/person layout is refused as ambiguous
    nested = tmp_path / "nested"
    _save(nested / "a" / "ann" / "1.png", 1)
    cfg = DataConfig(name="folder", path=str(nested), image_size=8, person_folders=True)
    with pytest.raises(DataError, match="expects DIR/<person>/<files>"):
        load_folder(cfg, str(nested))
