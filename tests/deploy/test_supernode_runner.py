"""Activation retries, exit codes and the enroll hint, with a stand-in for flower-supernode.

The stand-in is a tiny Python script that prints what flwr 1.42's SuperNode prints and exits with
its code (1 for every flwr_exit error), so the runner's decisions are tested without Flower.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ssl_fed.deploy.supernode import (
    EXIT_NOT_ENROLLED,
    EXIT_OK,
    EXIT_RETRY,
    Retry,
    SupernodeRunner,
    exit_code,
)

REFUSED = (
    "Exit Code: 305\nFailed to initialize the connection to the SuperLink.\n"
    "[code: 2004] Failed to activate SuperNode."
)
FAST = Retry(first=0.01, cap=0.02, total=0.05)


def fake_supernode(tmp_path: Path, outputs: list[tuple[str, int]]) -> list[str]:
    """A command that, on its k-th run, prints ``outputs[k][0]`` and exits ``outputs[k][1]``."""
    script = tmp_path / "fake.py"
    script.write_text(
        "import pathlib, sys\n"
        f"outputs = {outputs!r}\n"
        f"count = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "k = int(count.read_text()) if count.exists() else 0\n"
        "count.write_text(str(k + 1))\n"
        "text, code = outputs[min(k, len(outputs) - 1)]\n"
        "print(text)\n"
        "sys.exit(code)\n"
    )
    return [sys.executable, str(script)]


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_retry_delays_double_up_to_the_cap_and_stay_within_the_total() -> None:
    assert Retry(first=5, cap=30, total=150).delays() == [5, 10, 20, 30, 30, 30]
    assert sum(Retry().delays()) <= Retry().total


@pytest.mark.parametrize(
    "returncode, output, stopping, expected",
    [
        (0, "", False, EXIT_OK),
        (1, "anything", True, EXIT_OK),
        (-15, "", False, EXIT_OK),
        (1, REFUSED, False, EXIT_NOT_ENROLLED),
        (1, "ssl.SSLCertVerificationError: CERTIFICATE_VERIFY_FAILED", False, EXIT_RETRY),
        (1, "Traceback ...", False, EXIT_RETRY),
    ],
)
def test_exit_code_mapping(returncode: int, output: str, stopping: bool, expected: int) -> None:
    assert exit_code(returncode, output, stopping) == expected


def test_a_fresh_restart_is_retried_until_activation_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: refused twice (old node still online), then runs and stops normally
    cmd = fake_supernode(tmp_path, [(REFUSED, 1), (REFUSED, 1), ("stopped", 0)])
    # Execute
    code = SupernodeRunner(cmd, dict(os.environ), FAST).run()
    # Assert: three runs, normal exit, no enroll hint
    out = capsys.readouterr().out
    assert (code, runs(tmp_path)) == (EXIT_OK, 3)
    assert out.count("retrying in") == 2
    assert "server enroll" not in out


def test_a_key_refused_on_every_try_exits_3_with_the_enroll_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cmd = fake_supernode(tmp_path, [(REFUSED, 1)])
    code = SupernodeRunner(cmd, dict(os.environ), FAST).run()
    out = capsys.readouterr().out
    assert code == EXIT_NOT_ENROLLED
    assert runs(tmp_path) == len(FAST.delays()) + 1
    assert "ssl-fed server enroll" in out


@pytest.mark.parametrize(
    "text, code, expected",
    [
        ("CERTIFICATE_VERIFY_FAILED", 1, EXIT_RETRY),
        ("shutting down", 0, EXIT_OK),
    ],
)
def test_tls_errors_and_normal_stops_get_no_enroll_hint_and_no_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: int, expected: int
) -> None:
    cmd = fake_supernode(tmp_path, [(text, code)])
    result = SupernodeRunner(cmd, dict(os.environ), FAST).run()
    out = capsys.readouterr().out
    assert (result, runs(tmp_path)) == (expected, 1)
    assert "server enroll" not in out


def test_the_systemd_unit_stops_restarting_on_exactly_the_final_codes() -> None:
    # Prepare
    unit = Path(__file__).resolve().parents[2] / "deploy" / "ssl-fed-site.service"
    line = next(x for x in unit.read_text().splitlines() if x.startswith("RestartPreventExit"))
    # Execute
    codes = {int(c) for c in line.partition("=")[2].split()}
    # Assert: bad input and a refused key stop; a transient failure (75) is restarted
    assert codes == {2, EXIT_NOT_ENROLLED}
    assert EXIT_RETRY not in codes
