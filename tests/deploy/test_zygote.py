"""The warm ClientApp zygote (ssl_fed.deploy.zygote): a launcher's task runs forked, as if started.

The zygote runs a stand-in task (:func:`record_task`) instead of Flower's ``flwr-clientapp``: it
writes what the task process sees (argv, one environment variable, cwd, a NumPy draw) to a file
named in the launcher's environment, and exits with a code given there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssl_fed.deploy.zygote import ZYGOTE_ENV, launch, zygote_paths

ROOT = Path(__file__).resolve().parents[2]


def record_task() -> int:
    import numpy as np

    out = Path(os.environ["ZYGOTE_TEST_OUT"])
    out.write_text(
        json.dumps(
            {
                "argv": sys.argv,
                "flag": os.environ.get("ZYGOTE_TEST_FLAG"),
                "cwd": os.getcwd(),
                "draw": float(np.random.random()),
            }
        )
    )
    time.sleep(float(os.environ.get("ZYGOTE_TEST_SLEEP", "0")))
    raise SystemExit(int(os.environ["ZYGOTE_TEST_CODE"]))


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    folder.mkdir()
    code = (
        "import sys; from ssl_fed.deploy.zygote import serve; "
        "from tests.deploy.test_zygote import record_task; "
        "serve(sys.argv[1], preload=('numpy',), task=record_task)"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(  # its own group, as `site start` runs it
        [sys.executable, "-c", code, str(folder)], env=env, cwd=ROOT, start_new_session=True
    )
    try:
        sock, _ = zygote_paths(folder)
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, "the zygote exited"
            assert time.monotonic() < deadline, "the zygote did not start"
            time.sleep(0.05)
        yield folder
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def run_launch(
    monkeypatch: pytest.MonkeyPatch, folder: Path, out: Path, code: int, cwd: Path
) -> int | None:
    monkeypatch.setenv(ZYGOTE_ENV, str(folder))
    monkeypatch.setenv("ZYGOTE_TEST_OUT", str(out))
    monkeypatch.setenv("ZYGOTE_TEST_CODE", str(code))
    monkeypatch.setenv("ZYGOTE_TEST_FLAG", "from-the-launcher")
    monkeypatch.setattr(sys, "argv", ["flwr-clientapp", "--token", "t1"])
    monkeypatch.chdir(cwd)
    return launch()


def test_task_runs_with_the_launchers_argv_env_cwd_and_exit_code(
    zygote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    out1, out2 = tmp_path / "one.json", tmp_path / "two.json"
    handler = signal.getsignal(signal.SIGTERM)

    # Execute: two tasks, from two working directories
    code1 = run_launch(monkeypatch, zygote, out1, 3, tmp_path)
    code2 = run_launch(monkeypatch, zygote, out2, 0, zygote)

    # Assert: the launcher's view, its exit code, fresh NumPy randomness per task, and the
    # launcher's own SIGTERM handler restored afterwards
    one, two = json.loads(out1.read_text()), json.loads(out2.read_text())
    assert (code1, code2) == (3, 0)
    assert one["argv"] == ["flwr-clientapp", "--token", "t1"]
    assert one["flag"] == "from-the-launcher"
    assert (one["cwd"], two["cwd"]) == (str(tmp_path), str(zygote))
    assert one["draw"] != two["draw"]
    assert signal.getsignal(signal.SIGTERM) == handler


def test_without_a_zygote_the_launcher_runs_the_task_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a folder with no zygote socket; and no zygote folder at all
    out = tmp_path / "out.json"

    # Execute
    missing = run_launch(monkeypatch, tmp_path, out, 0, tmp_path)
    monkeypatch.delenv(ZYGOTE_ENV)
    unset = launch()

    # Assert: None tells the launcher to run Flower's flwr-clientapp in its own process
    assert missing is None and unset is None
    assert not out.exists()


def test_a_wrong_key_is_refused_and_the_zygote_keeps_serving(
    zygote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a copy of the folder whose key is not the zygote's
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    sock, key = zygote_paths(zygote)

    # Execute
    with pytest.raises((AuthenticationError, EOFError, OSError)):
        Client(str(sock), family="AF_UNIX", authkey=b"not-the-key")
    code = run_launch(monkeypatch, zygote, tmp_path / "out.json", 5, tmp_path)

    # Assert
    assert code == 5
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_stopping_the_zygote_stops_the_tasks_in_flight(
    zygote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a task that would run for a minute, started as a launcher starts one
    from multiprocessing.connection import Client

    sock, key = zygote_paths(zygote)
    env = dict(os.environ, ZYGOTE_TEST_OUT=str(tmp_path / "o.json"), ZYGOTE_TEST_CODE="0")
    env["ZYGOTE_TEST_SLEEP"] = "60"
    conn = Client(str(sock), family="AF_UNIX", authkey=key.read_bytes())
    conn.send((["flwr-clientapp"], env, str(tmp_path)))
    task = conn.recv()
    deadline = time.monotonic() + 30
    while not (tmp_path / "o.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    zygote_pid = os.getpgid(task)  # the zygote leads its own process group

    # Execute: SIGTERM to the zygote only (as PR_SET_PDEATHSIG sends when the site dies)
    os.kill(zygote_pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(task) and time.monotonic() < deadline:
        time.sleep(0.05)

    # Assert: the task is gone, and the launcher hears of it (no exit code: a failed task)
    assert not alive(task)
    with pytest.raises((EOFError, OSError)):
        conn.recv()
