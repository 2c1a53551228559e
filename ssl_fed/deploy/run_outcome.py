"""``ssl-fed run``: stream ``flwr run --stream`` and turn the run's outcome into an exit code.

``flwr run --stream`` (flwr 1.42) exits 0 whatever the run did: it only starts the run and
relays its log. So success is read from the log, *positively*: the deployed ServerApp
(:func:`ssl_fed.fed.serverapp.make_server_app`) prints one line starting with
:data:`COMPLETE_MARK` after it finished its rounds and wrote ``metrics.json``, and only a log
that carries it exits 0. A run that completed no round (every site declined, dropped or was
skipped, so the model is unchanged) raises
:class:`~ssl_fed.fed.simulation.NoRoundCompletedError` instead; its reason maps to
:data:`EXIT_NO_ROUND`. Anything else (the ServerApp raised, the SuperLink stopped the run, the
stream ended early) lacks the line and maps to :data:`EXIT_INCOMPLETE`. Each failure prints one
``error:`` line.

How the lines get here: Flower's ``flwr-serverapp`` process mirrors its stdout and stderr into
a queue that its log uploader pushes to the SuperLink (``flwr.supercore.logger.
mirror_output_to_queue``; the exception Flower logs when the app raises goes through the same
stream), flushing it before it reports the run finished; ``flwr run --stream`` prints those
chunks unchanged. :func:`scan` therefore matches substrings, not whole lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_NO_ROUND = 2
"""``ssl-fed run``: the run completed no round (the same code ``ssl-fed simulate`` uses)."""

NO_ROUND_MARK = "completed no round"
"""The phrase of :class:`~ssl_fed.fed.simulation.NoRoundCompletedError` that the log carries."""

EXIT_INCOMPLETE = 3
"""``ssl-fed run``: the log ended without :data:`COMPLETE_MARK` (the ServerApp raised, the run was
stopped, or the stream ended early); flwr's own failures keep flwr's code (1)."""

COMPLETE_MARK = "ssl-fed run complete:"
"""The start of the line the deployed ServerApp prints last (:func:`completion_line`)."""

_STARTED = re.compile(r"Successfully started run (\d+)")


@dataclass
class RunOutcome:
    """What the streamed log said: the Flower run id, the no-round reason, the completion line."""

    run_id: str | None = None
    no_round: str | None = None
    complete: str | None = None


def completion_line(completed: int, rounds: int, metrics: str) -> str:
    """Return the line a deployed ServerApp prints when it finished and wrote its outputs."""
    return f"{COMPLETE_MARK} {completed} of {rounds} rounds completed, metrics at {metrics}"


def scan(lines: Iterable[str], echo: bool = True) -> RunOutcome:
    """Echo ``lines`` to stdout; note the run id, the first no-round and completion lines."""
    out = RunOutcome()
    for line in lines:
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
        started = _STARTED.search(line)
        if started and out.run_id is None:
            out.run_id = started.group(1)
        if NO_ROUND_MARK in line and out.no_round is None:
            out.no_round = line.strip()
        if COMPLETE_MARK in line and out.complete is None:
            out.complete = line.strip()
    return out


def stream_run(cmd: list[str], env: dict[str, str]) -> tuple[int, RunOutcome]:
    """Run ``cmd`` (``flwr run ... --stream``), echo its output, return (its code, outcome)."""
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None  # stdout=PIPE
        outcome = scan(proc.stdout)
    return proc.returncode, outcome


def run_exit_code(returncode: int, outcome: RunOutcome) -> int:
    """Return ``ssl-fed run``'s exit code: 0 only when the log carried the completion line.

    flwr's own failure keeps its code (it printed why); otherwise one ``error:`` line and
    :data:`EXIT_NO_ROUND` or :data:`EXIT_INCOMPLETE`.
    """
    if returncode != 0:
        return returncode
    run = f"run {outcome.run_id}" if outcome.run_id else "the run"
    if outcome.no_round is not None:
        reason = outcome.no_round.split(NO_ROUND_MARK, 1)[1].lstrip(": ")
        _error(f"{run} completed no round, the model is unchanged: {reason}")
        return EXIT_NO_ROUND
    if outcome.complete is None:
        _error(
            f"{run} ended without its completion line ({COMPLETE_MARK!r}): the ServerApp failed, "
            "the run was stopped, or the log stream ended early; see the log above and the "
            "SuperLink log"
        )
        return EXIT_INCOMPLETE
    return 0


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)
