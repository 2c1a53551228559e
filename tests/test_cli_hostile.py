"""Hostile CLI inputs: each exits 2 with one ``error:`` line naming the field or file; no writes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ssl_fed.cli import main
from ssl_fed.config import ConfigError, load_config, validate_output


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], names: str) -> None:
    """Assert: exit 2, stderr is exactly one ``error:`` line that names ``names``."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert names in err[0]


def _forged_npz(path: Path) -> Path:
    """An .npz whose 'images' header declares 2^22 x 2^22 float64 (128 TiB) over 64 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2**22, 2**22)}
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images.npy", header.getvalue() + b"\0" * 64)
    return path


def test_a_forged_npz_header_is_refused_before_allocating(tmp_path: Path, capsys) -> None:
    data = _forged_npz(tmp_path / "forged.npz")
    out = tmp_path / "out"
    argv = ["train-local", "data=npz", f"data.path={data}", f"out={out}", "privacy=off"]
    _refused(capsys, argv, "forged.npz")
    assert not out.exists()


@pytest.mark.parametrize(
    "override, field",
    [
        ("privacy.max_grad_norm=inf", "privacy.max_grad_norm"),
        ("privacy.max_grad_norm=nan", "privacy.max_grad_norm"),
        ("privacy.target_epsilon=inf", "privacy.target_epsilon"),
        ("privacy.epsilon_budget=inf", "privacy.epsilon_budget"),
        ("privacy.noise_multiplier=inf", "privacy.noise_multiplier"),
        ("privacy.noise_multiplier=nan", "privacy.noise_multiplier"),
        ("train.lr=inf", "train.lr"),
        ("aggregation.clipping_range=inf", "aggregation.clipping_range"),
        ("aggregation.timeout=inf", "aggregation.timeout"),
        ("partition.alpha=inf", "partition.alpha"),
        ("out=", "out"),
    ],
)
def test_a_non_finite_or_empty_value_is_refused_before_the_ledger(
    tmp_path: Path, capsys, override: str, field: str
) -> None:
    # Prepare: the site's ledger would live in state/
    state, out = tmp_path / "state", tmp_path / "out"
    argv = ["train-local", f"state_dir={state}", f"out={out}", override]
    # Execute / Assert: refused before anything is charged or written
    _refused(capsys, argv, field)
    assert not state.exists()
    assert not out.exists()


def test_out_that_is_a_device_is_refused(capsys) -> None:
    _refused(capsys, ["train-local", "out=/dev/null", "privacy=off"], "out='/dev/null'")


def test_out_that_is_a_file_is_refused_and_kept(tmp_path: Path, capsys) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    _refused(capsys, ["train-local", f"out={target}", "privacy=off"], "out=")
    assert target.read_text() == "keep me"


def test_out_holding_a_finished_run_is_refused_unless_overwrite(tmp_path: Path, capsys) -> None:
    # Prepare: a finished run
    (tmp_path / "metrics.json").write_text('{"epsilon": 3.0}')
    # Execute / Assert: refused, and the run is intact
    _refused(capsys, ["train-local", f"out={tmp_path}", "privacy=off"], "finished run")
    assert (tmp_path / "metrics.json").read_text() == '{"epsilon": 3.0}'
    _refused(capsys, ["pretrain-synthetic", f"out={tmp_path}"], "finished run")
    # ... unless the user asks for it
    validate_output(load_config([f"out={tmp_path}", "overwrite=true"]))
    with pytest.raises(ConfigError, match="overwrite=true"):
        validate_output(load_config([f"out={tmp_path}"]))


def test_an_os_error_is_one_error_line(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: a command whose file system access is refused
    import ssl_fed.cli as cli

    def denied(overrides: list[str]) -> int:
        raise PermissionError(13, "Permission denied", "/srv/site/ledger.jsonl")

    monkeypatch.setitem(cli.COMMANDS, "train-local", (denied, "test"))
    # Execute / Assert
    _refused(capsys, ["train-local"], "/srv/site/ledger.jsonl: Permission denied")
