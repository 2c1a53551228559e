"""Export: TorchScript and ONNX reproduce the checkpoint's features; the card reads the run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ssl_fed.cli import main
from ssl_fed.config import load_config
from ssl_fed.export import ExportError, export_run
from ssl_fed.fed import arrays as fa
from ssl_fed.models import build_model
from ssl_fed.serve import commands

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]


def write_run(run, eps):
    cfg = load_config(TINY)
    torch.manual_seed(0)
    model = build_model(cfg.encoder, 1)
    state = fa.federated_state(model, False)
    ckpt = {
        "round": 2,
        "run_id": "abc",
        "arrays": fa.state_to_arrays(state),
        "names": list(state),
        "history": [{"completed": [0, 1, 2]}, {"completed": [0, 1]}],
        "config": OmegaConf.to_container(OmegaConf.structured(cfg)),
    }
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints/last.pt")
    metrics = {
        "epsilon_per_site": eps,
        "delta": 1e-5,
        "secure_aggregation": "secagg",
        "linear_probe": {"1": 0.5},
        "knn_accuracy": 0.6,
        "evaluated_round": 2,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    return model


def test_torchscript_features_match_the_checkpoint(tmp_path):
    # Prepare
    model = write_run(tmp_path / "run", {"0": 1.5, "1": 2.25, "2": 0.75})
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    # Execute
    paths = export_run(tmp_path / "run", "torchscript", tmp_path / "out")
    exported = torch.jit.load(str(paths[0]))
    # Assert
    with torch.no_grad():
        expected = model.encoder.eval().features(x)
        got = exported(x)
    assert torch.allclose(got, expected, atol=1e-5)
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert card["epsilon_max"] == 2.25
    assert card["epsilon_per_site"] == {"0": 1.5, "1": 2.25, "2": 0.75}
    assert card["delta"] == 1e-5 and card["accountant"] == "rdp"
    assert card["rounds"] == 2 and card["sites"] == [0, 1, 2]
    assert len(card["config_sha256"]) == 64
    assert "2.250" in (tmp_path / "out" / "model_card.md").read_text()


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(ExportError, match=r"checkpoints/last\.pt"):
        export_run(tmp_path, "torchscript", tmp_path / "out")


def test_missing_run_folder_is_one_error_line_and_exit_2(tmp_path, capsys):
    # Execute
    code = main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: run folder") and "nope" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_onnx_without_the_extra_names_it_and_exits_2(tmp_path, monkeypatch, capsys, package):
    # Prepare
    write_run(tmp_path / "run", {})
    monkeypatch.setitem(sys.modules, package, None)
    # Execute
    args = ["export", "--run", str(tmp_path / "run"), "--format", "onnx"]
    code = main([*args, "--out", str(tmp_path / "out")])
    # Assert
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert package in err[0] and "ssl-fed[export]" in err[0]
    assert not (tmp_path / "out").exists()


def test_int8_needs_onnx_format(tmp_path):
    write_run(tmp_path / "run", {})
    with pytest.raises(ExportError, match="--format onnx"):
        export_run(tmp_path / "run", "torchscript", tmp_path / "out", quantize="int8")
    assert not (tmp_path / "out").exists()


def test_cli_format_choices_match_the_exporter():
    from ssl_fed.export import FORMATS

    assert sorted(commands.FORMATS) == sorted(FORMATS)


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    """One ONNX export with an int8 copy, shared by the slow tests below."""
    root = tmp_path_factory.mktemp("onnx")
    model = write_run(root / "run", {"0": 1.5, "1": 2.25})
    paths = export_run(root / "run", "onnx", root / "out", quantize="int8")
    return model, paths, root / "out"


@pytest.mark.slow
def test_onnx_fp32_matches_torch_and_every_file_is_listed(onnx_export):
    import onnxruntime as ort

    # Prepare
    model, paths, out = onnx_export
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    # Execute
    session = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    # Assert
    with torch.no_grad():
        expected = model.encoder.eval().features(x).numpy()
    assert np.abs(got - expected).max() <= 1e-5
    assert sorted(p.name for p in paths) == sorted(p.name for p in out.iterdir())
    assert not (out / "encoder.onnx.data").exists()


INT8_TOLERANCE = 0.1
"""int8 features may differ from fp32 by at most 10% in relative L2 norm (measured: ~1-3%)."""


@pytest.mark.slow
def test_int8_is_close_to_fp32_and_the_card_says_how(onnx_export):
    import onnxruntime as ort

    # Prepare
    model, _, out = onnx_export
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    # Execute
    session = ort.InferenceSession(
        str(out / "encoder.int8.onnx"), providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {"images": x.numpy()})[0]
    # Assert
    with torch.no_grad():
        expected = model.encoder.eval().features(x).numpy()
    assert np.linalg.norm(got - expected) <= INT8_TOLERANCE * np.linalg.norm(expected)
    quant = json.loads((out / "model_card.json").read_text())["quantization"]
    assert "static quantization" in quant["method"]
    calibration = quant["calibration_data"]
    assert calibration.startswith("synthetic:strokes") and "no site data" in calibration
    assert quant["size_bytes"]["int8"] < quant["size_bytes"]["fp32"]
    probe = quant["probe"]
    assert "digits" in probe["data"] and set(probe["fp32"]) == {"10", "all"}
    change = round(100 * (probe["int8"]["all"] - probe["fp32"]["all"]), 2)
    assert probe["change_points"]["all"] == change
    assert "Quantization" in (out / "model_card.md").read_text()
