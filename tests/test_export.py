"""Export: the TorchScript encoder reproduces the checkpoint's features; the card reads the run."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from ssl_fed.config import load_config
from ssl_fed.export import ExportError, export_run
from ssl_fed.fed import arrays as fa
from ssl_fed.models import build_model

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]


def write_run(run, eps):
    cfg = load_config(TINY)
    torch.manual_seed(0)
    model = build_model(cfg.encoder, 1)
    state = fa.federated_state(model, False)
    ckpt = {
        "round": 2, "run_id": "abc", "arrays": fa.state_to_arrays(state), "names": list(state),
        "history": [{"completed": [0, 1, 2]}, {"completed": [0, 1]}],
        "config": OmegaConf.to_container(OmegaConf.structured(cfg)),
    }
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints/last.pt")
    metrics = {"epsilon_per_site": eps, "delta": 1e-5, "secure_aggregation": "secagg",
               "linear_probe": {"1": 0.5}, "knn_accuracy": 0.6, "evaluated_round": 2}
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


def test_onnx_without_the_package_says_how_to_install(tmp_path, monkeypatch):
    import sys

    write_run(tmp_path / "run", {})
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ExportError, match="pip install onnx"):
        export_run(tmp_path / "run", "onnx", tmp_path / "out")
