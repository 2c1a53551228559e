"""distill and calibration: synthetic images only, the teacher's ε carried unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ssl_fed.data.folder
import ssl_fed.data.loaders
from ssl_fed.cli import main
from ssl_fed.export import export_run
from ssl_fed.serve.distill import DistillOptions, distill
from ssl_fed.serve.quantize import quantize_onnx, synthetic_images
from ssl_fed.serve.runtime import load_served
from tests.test_export import write_run

EPS = {"0": 1.5, "1": 2.25, "2": 0.75}


@pytest.fixture
def no_site_data(monkeypatch):
    """Make every site-data loader raise, so a test fails if any of them is reached."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a site data loader was called with {args}")

    for module, name in [
        (ssl_fed.data.folder, "load_folder"),
        (ssl_fed.data.folder, "_read_image"),
        (ssl_fed.data.loaders, "load_folder"),
        (ssl_fed.data.loaders, "load_npz"),
        (ssl_fed.data.loaders, "load_splits"),
        (np, "load"),
    ]:
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def teacher(tmp_path):
    write_run(tmp_path / "run", EPS)
    export_run(tmp_path / "run", "torchscript", tmp_path / "teacher")
    return tmp_path / "teacher"


def test_distill_reads_no_site_data_and_carries_the_teachers_epsilon(
    tmp_path, teacher, no_site_data
):
    # Prepare
    teacher_card = json.loads((teacher / "model_card.json").read_text())
    opts = DistillOptions(width=4, images_per_epoch=64, epochs=2, batch_size=32)
    # Execute
    written = distill(teacher, tmp_path / "student", opts, fmt="torchscript", measure_probe=False)
    # Assert
    card = json.loads((tmp_path / "student" / "model_card.json").read_text())
    for key in ("epsilon_per_site", "epsilon_max", "delta", "accountant", "privacy_unit"):
        assert card[key] == teacher_card[key]
    assert card["epsilon_per_site"] == EPS
    info = card["distillation"]
    assert (
        info["training_data"].startswith("synthetic:strokes")
        and "no site data" in (info["training_data"])
    )
    assert card["linear_probe"] is None and card["knn_accuracy"] is None
    teacher_params = sum(
        p.numel() for p in torch.jit.load(str(teacher / "encoder.pt")).parameters()
    )
    # width 4: convs 1*4*9+4, 4*8*9+8, 8*16*9+16 plus GroupNorm affine 2*(4+8+16) = 1560
    assert info["student"]["params"] == 1560 < teacher_params
    assert sorted(p.name for p in written) == sorted(
        p.name for p in (tmp_path / "student").iterdir()
    )
    student = load_served(tmp_path / "student")
    assert student.run(synthetic_images(3, 8, 1, 9)).shape == (3, 48)


@pytest.mark.slow
def test_distilled_student_moves_towards_the_teacher(tmp_path, teacher):
    # Prepare: the loss after more training is below the loss after one tiny epoch
    short = DistillOptions(width=4, images_per_epoch=64, epochs=1, batch_size=64)
    longer = DistillOptions(width=4, images_per_epoch=256, epochs=6, batch_size=64)
    # Execute
    distill(teacher, tmp_path / "a", short, fmt="torchscript", measure_probe=False)
    distill(teacher, tmp_path / "b", longer, fmt="torchscript", measure_probe=False)
    # Assert
    a = json.loads((tmp_path / "a" / "model_card.json").read_text())["distillation"]
    b = json.loads((tmp_path / "b" / "model_card.json").read_text())["distillation"]
    assert b["final_loss"] < a["final_loss"]


def test_a_teacher_without_a_card_is_one_error_line_before_training(tmp_path, capsys):
    # Prepare: a run folder has a checkpoint but no exported card
    write_run(tmp_path / "run", EPS)
    args = ["distill", "--teacher", str(tmp_path / "run"), "--width", "4"]
    # Execute
    code = main([*args, "--out", str(tmp_path / "out")])
    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model_card.json" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_int8_calibration_reads_no_site_data(tmp_path, no_site_data):
    from ssl_fed.export import FeatureEncoder, write_encoder
    from ssl_fed.models import ConvGNEncoder

    # Prepare
    torch.manual_seed(0)
    module = FeatureEncoder(ConvGNEncoder(1, width=8, norm_groups=4)).eval()
    write_encoder(module, "onnx", tmp_path, torch.zeros(2, 1, 8, 8))
    # Execute
    quantize_onnx(tmp_path / "encoder.onnx", tmp_path / "int8.onnx", synthetic_images(64, 8, 1, 0))
    # Assert
    x = synthetic_images(16, 8, 1, 1)
    got = load_served(tmp_path / "int8.onnx").run(x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert np.linalg.norm(got - expected) <= 0.1 * np.linalg.norm(expected)
