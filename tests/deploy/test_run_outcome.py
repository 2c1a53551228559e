"""`ssl-fed run` exits 0 only on the ServerApp's completion line; 2 or 3 with one line otherwise.

`flwr run --stream` exits 0 whatever the run did; the deployed ServerApp prints a completion line
when it finished, or raises NoRoundCompletedError, and Flower relays either in the log. A fake
`flwr` (a script that prints what flwr 1.42 prints) stands in for the SuperLink here; no Flower
process starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from ssl_fed.config import RootConfig
from ssl_fed.deploy import commands
from ssl_fed.deploy.run_outcome import (
    COMPLETE_MARK,
    EXIT_INCOMPLETE,
    EXIT_NO_ROUND,
    NO_ROUND_MARK,
    RunOutcome,
    completion_line,
    run_exit_code,
    scan,
)
from ssl_fed.fed.simulation import NoRoundCompletedError, check_some_round_completed

STARTED = "Successfully started run 4242\n"
ROUND = "round 1/1: sites sampled/completed/dropped/declined 3/3/0/0\n"
COMPLETE = completion_line(1, 1, "/runs/a/metrics.json") + "\n"
CRASH = [  # what flwr 1.42 relays when the ServerApp raised anything but NoRoundCompletedError
    "\x1b[91mERROR \x1b[0m:   ServerApp raised an exception\n",
    "Traceback (most recent call last):\n",
    "RuntimeError: CUDA out of memory\n",
]


def fake_flwr(tmp_path: Path, lines: list[str], code: int = 0) -> str:
    script = tmp_path / "flwr"
    body = "".join(f"print({line!r}, end='')\n" for line in lines)
    script.write_text(f"#!{sys.executable}\nimport sys\n{body}sys.exit({code})\n")
    script.chmod(0o755)
    return str(script)


def run_args(tmp_path: Path) -> argparse.Namespace:
    ca = tmp_path / "ca.crt"
    ca.write_text("not read: the fake flwr never connects\n")
    project = Path(commands.__file__).resolve().parents[2]
    return argparse.Namespace(
        app=str(project),
        overrides=[f"out={tmp_path / 'out'}"],
        connection="test",
        superlink="127.0.0.1:9",
        ca=str(ca),
        detach=False,
    )


def no_round_line(tmp_path: Path) -> str:
    """The reason the deployed ServerApp raises for a run whose every round was skipped."""
    metrics = {"history": [{"round": 1, "completed": [], "declined": [0, 1], "skipped": "x"}]}
    with pytest.raises(NoRoundCompletedError) as err:
        check_some_round_completed(metrics, tmp_path / "metrics.json", "the run")
    return f"NoRoundCompletedError: {err.value}\n"


def test_a_run_with_no_completed_round_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: flwr prints the run id, a round line, and the ServerApp's error; then exits 0
    reason = no_round_line(tmp_path)
    lines = [STARTED, "round 1/1: skipped\n", reason]
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    monkeypatch.setattr(commands, "binary", lambda name: fake_flwr(tmp_path, lines))

    # Execute
    code = commands.cmd_run(run_args(tmp_path))

    # Assert: the log is relayed unchanged; one error line names the run and the reason
    out, err = capsys.readouterr()
    assert code == EXIT_NO_ROUND == 2
    assert out == "".join(lines)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: run 4242 completed no round, the model is unchanged: in all 1 rounds no site "
        + reason.split("in all 1 rounds no site ", 1)[1].strip()
    ]


def test_a_run_that_completed_rounds_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    lines = [STARTED, ROUND, COMPLETE]
    monkeypatch.setattr(commands, "binary", lambda name: fake_flwr(tmp_path, lines))
    assert commands.cmd_run(run_args(tmp_path)) == 0


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([STARTED, ROUND, *CRASH], id="serverapp-raised"),
        pytest.param([STARTED, ROUND, "Task stopped by user.\n"], id="stopped"),
        pytest.param([STARTED, ROUND], id="stream-ended-early"),
    ],
)
def test_a_run_without_the_completion_line_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], lines: list[str]
) -> None:
    # Prepare: flwr exited 0 and relayed a log that lacks the completion line
    outcome = scan(lines, echo=False)

    # Execute
    code = run_exit_code(0, outcome)

    # Assert: a code of its own, one error line naming the run and where to look
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE == 3
    assert len(err.splitlines()) == 1
    assert err.startswith("error: run 4242 ended without its completion line")
    assert "SuperLink log" in err


def test_no_round_wins_over_a_completion_line_and_flwrs_failure_over_both() -> None:
    outcome = scan([STARTED, "x the run completed no round: because\n", COMPLETE], echo=False)
    assert run_exit_code(0, outcome) == EXIT_NO_ROUND
    assert run_exit_code(1, outcome) == 1


def test_flwrs_own_failure_keeps_its_code() -> None:
    assert run_exit_code(1, RunOutcome(None, None)) == 1


def test_scan_finds_the_run_id_the_reason_and_the_completion_line_without_echo() -> None:
    outcome = scan([STARTED, "x the run completed no round: because\n", COMPLETE], echo=False)
    line = f"{COMPLETE_MARK} 1 of 1 rounds completed, metrics at /runs/a/metrics.json"
    assert outcome == RunOutcome("4242", "x the run completed no round: because", line)


def test_the_simulation_still_names_itself() -> None:
    with pytest.raises(NoRoundCompletedError, match=r"^the simulation completed no round"):
        check_some_round_completed({"history": []}, Path("m.json"))


@pytest.mark.parametrize("completed, fails", [([], True), ([0, 1], False)])
def test_the_deployed_server_app_fails_a_run_that_completed_no_round(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    completed: list[int],
    fails: bool,
) -> None:
    # Prepare: the real ServerApp from a run config; the federation itself is replaced by a
    # stand-in that writes the metrics.json a one-round run would (completed or all declined)
    from flwr.app import Context, RecordDict

    from ssl_fed.config import load_config
    from ssl_fed.fed import serverapp
    from ssl_fed.fed.runconfig import to_run_config

    def federation(grid: object, context: object, cfg: RootConfig, pooled: bool = False) -> None:
        entry = {"round": 1, "completed": completed, "declined": [2], "dropped": []}
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "metrics.json").write_text(json.dumps({"history": [entry]}))

    monkeypatch.setattr(serverapp, "run_server", federation)
    run_config = to_run_config(load_config([f"out={tmp_path / 'run'}"]))
    context = Context(1, 0, {}, RecordDict(), run_config)
    app = serverapp.make_server_app()
    assert app._main is not None

    # Execute / Assert: the reason Flower relays carries NO_ROUND_MARK; a run that applied a
    # round prints the completion line last, naming its metrics file
    if fails:
        with pytest.raises(NoRoundCompletedError, match=rf"^the run {NO_ROUND_MARK}: in all 1"):
            app._main(object(), context)  # type: ignore[arg-type]
        assert COMPLETE_MARK not in capsys.readouterr().err
    else:
        app._main(object(), context)  # type: ignore[arg-type]
        metrics = tmp_path / "run" / "metrics.json"
        rounds = load_config([]).sim.rounds
        last = capsys.readouterr().err.splitlines()[-1]
        assert last == f"{COMPLETE_MARK} 1 of {rounds} rounds completed, metrics at {metrics}"
