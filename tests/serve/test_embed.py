"""embed: streamed features equal the checkpoint's features(); bad files are named or counted."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_fed.cli import main
from ssl_fed.config import DataConfig
from ssl_fed.data import DataError
from ssl_fed.data.folder import load_folder
from ssl_fed.serve.embed import embed
from ssl_fed.serve.runtime import load_served
from tests.test_export import write_run


def write_pngs(folder, n, seed=0, size=12):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"img{i:02d}.png")


def reference(model, folder):
    """Ground truth: training's loader on the whole folder, then the encoder's features()."""
    images = load_folder(DataConfig(name="folder", image_size=8, channels=1), str(folder)).images
    with torch.no_grad():
        return model.encoder.eval().features(images).numpy()


def read_index(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_streamed_folder_features_equal_the_checkpoint(tmp_path):
    # Prepare: 7 images streamed in chunks of 3 (3 + 3 + 1)
    model = write_run(tmp_path / "run", {"0": 1.0})
    write_pngs(tmp_path / "data", 7)
    # Execute
    summary = embed(
        load_served(tmp_path / "run"), tmp_path / "data", tmp_path / "f.npy", batch_size=3
    )
    # Assert
    got = np.load(tmp_path / "f.npy")
    assert summary.rows == 7 and got.shape == (7, 96) and got.dtype == np.float32
    assert np.abs(got - reference(model, tmp_path / "data")).max() <= 1e-5
    index = read_index(tmp_path / "f.index.csv")
    assert [r["source"] for r in index] == [f"img{i:02d}.png" for i in range(7)]
    assert [r["row"] for r in index] == [str(i) for i in range(7)]


def test_labelled_folder_index_names_the_class(tmp_path):
    # Prepare
    write_run(tmp_path / "run", {})
    write_pngs(tmp_path / "data" / "cat", 2, seed=1)
    write_pngs(tmp_path / "data" / "dog", 1, seed=2)
    # Execute
    embed(load_served(tmp_path / "run"), tmp_path / "data", tmp_path / "f.npy")
    # Assert
    index = read_index(tmp_path / "f.index.csv")
    assert [(r["source"], r["label"]) for r in index] == [
        ("cat/img00.png", "cat"),
        ("cat/img01.png", "cat"),
        ("dog/img00.png", "dog"),
    ]


def test_a_corrupt_file_stops_with_its_path_and_writes_nothing(tmp_path):
    # Prepare
    write_run(tmp_path / "run", {})
    write_pngs(tmp_path / "data", 4)
    (tmp_path / "data" / "img02.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "f.npy").write_bytes(b"saved earlier")
    # Execute
    with pytest.raises(DataError, match=r"img02\.png.*--on-bad-file skip"):
        embed(load_served(tmp_path / "run"), tmp_path / "data", tmp_path / "f.npy", batch_size=2)
    # Assert: the earlier file is untouched and no temporary file is left
    assert (tmp_path / "f.npy").read_bytes() == b"saved earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "f.npy", "run"]


def test_skip_counts_the_corrupt_file_and_embeds_the_rest(tmp_path, capsys):
    # Prepare
    model = write_run(tmp_path / "run", {})
    write_pngs(tmp_path / "data", 5)
    (tmp_path / "data" / "img01.png").write_bytes(b"garbage")
    args = ["embed", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "data")]
    # Execute
    code = main([*args, "--out", str(tmp_path / "f.npy"), "--on-bad-file", "skip"])
    # Assert
    out = capsys.readouterr().out
    assert code == 0 and "skipped 1 unreadable file(s)" in out and "img01.png" in out
    got = np.load(tmp_path / "f.npy")
    (tmp_path / "data" / "img01.png").unlink()
    assert got.shape == (4, 96)
    assert np.abs(got - reference(model, tmp_path / "data")).max() <= 1e-5
    sources = [r["source"] for r in read_index(tmp_path / "f.index.csv")]
    assert sources == ["img00.png", "img02.png", "img03.png", "img04.png"]


def test_npz_rows_and_labels_are_indexed(tmp_path):
    # Prepare: uint8 16x16 images, resized to 8x8 as training's npz loader does
    model = write_run(tmp_path / "run", {})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([3, 1, 4, 1, 5]))
    # Execute
    embed(load_served(tmp_path / "run"), tmp_path / "d.npz", tmp_path / "f.npy", batch_size=2)
    # Assert
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = model.encoder.eval().features(x.clamp(0, 1)).numpy()
    assert np.abs(np.load(tmp_path / "f.npy") - expected).max() <= 1e-5
    index = read_index(tmp_path / "f.index.csv")
    assert [(r["source"], r["label"]) for r in index] == [
        ("0", "3"),
        ("1", "1"),
        ("2", "4"),
        ("3", "1"),
        ("4", "5"),
    ]


def test_torchscript_export_embeds_like_the_checkpoint(tmp_path):
    from ssl_fed.export import export_run

    # Prepare
    model = write_run(tmp_path / "run", {})
    write_pngs(tmp_path / "data", 3)
    export_run(tmp_path / "run", "torchscript", tmp_path / "export")
    # Execute
    embed(load_served(tmp_path / "export"), tmp_path / "data", tmp_path / "f.npy")
    # Assert
    got = np.load(tmp_path / "f.npy")
    assert np.abs(got - reference(model, tmp_path / "data")).max() <= 1e-5


@pytest.mark.parametrize(
    ("model", "data", "needle"),
    [("run", "missing", "--data"), ("nothing", "data", "--model"), ("run", "empty", "no PNG")],
)
def test_bad_input_is_one_error_line(tmp_path, capsys, model, data, needle):
    # Prepare
    write_run(tmp_path / "run", {})
    (tmp_path / "empty").mkdir()
    write_pngs(tmp_path / "data", 1)
    args = ["embed", "--model", str(tmp_path / model), "--data", str(tmp_path / data)]
    # Execute
    code = main([*args, "--out", str(tmp_path / "f.npy")])
    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0]
    assert not (tmp_path / "f.npy").exists()


def test_gzipped_idx_file_embeds_like_the_npz_of_the_same_images(tmp_path):
    # Prepare: the same images once as a gzipped IDX pair (images + labels), once as an .npz
    from ssl_fed.data.idx import write_idx

    write_run(tmp_path / "run", {})
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 16, 16), dtype=np.uint8)
    labels = np.array([2, 7, 1, 8, 2], dtype=np.uint8)
    idx = write_idx(tmp_path / "site-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "site-labels-idx1-ubyte.gz", labels)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    served = load_served(tmp_path / "run")

    # Execute
    embed(served, idx, tmp_path / "idx.npy", batch_size=2)
    embed(served, tmp_path / "d.npz", tmp_path / "npz.npy", batch_size=2)

    # Assert: identical features; labels found by the IDX naming rule
    assert np.array_equal(np.load(tmp_path / "idx.npy"), np.load(tmp_path / "npz.npy"))
    index = read_index(tmp_path / "idx.index.csv")
    assert [r["label"] for r in index] == ["2", "7", "1", "8", "2"]


def test_a_file_that_is_neither_npz_nor_idx_is_refused_by_name(tmp_path):
    # Prepare: a text file
    write_run(tmp_path / "run", {})
    (tmp_path / "notes.txt").write_text("not images")

    # Execute / Assert
    with pytest.raises(DataError, match=r"notes\.txt.*IDX images file"):
        embed(load_served(tmp_path / "run"), tmp_path / "notes.txt", tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists()
