"""``ssl-fed run``: stream ``flwr run --stream`` and turn the run's outcome into an exit code.

``flwr run --stream`` (flwr 1.42) exits 0 whatever the run did: it only starts the run and
relays its log. A deployed run that completed no round (every site declined, dropped or was
skipped, so the model is unchanged) must not look like success to a script or a scheduler, so
the deployed ServerApp raises :class:`~ssl_fed.fed.simulation.NoRoundCompletedError` with its
reason (:func:`ssl_fed.fed.serverapp.make_server_app`), Flower relays that line in the log, and
:func:`stream_run` finds it while echoing the log unchanged. :func:`run_exit_code` maps it to
:data:`EXIT_NO_ROUND` and one ``error:`` line.
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

_STARTED = re.compile(r"Successfully started run (\d+)")


@dataclass
class RunOutcome:
    """What the streamed log said: the Flower run id, and the no-round reason if any."""

    run_id: str | None = None
    no_round: str | None = None


def scan(lines: Iterable[str], echo: bool = True) -> RunOutcome:
    """Echo ``lines`` to stdout and note the run id and the first no-round line."""
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
    """Return ``ssl-fed run``'s exit code; print one ``error:`` line when no round completed."""
    if returncode != 0:
        return returncode  # flwr itself failed (it printed why)
    if outcome.no_round is None:
        return 0
    reason = outcome.no_round.split(NO_ROUND_MARK, 1)[1].lstrip(": ")
    run = f"run {outcome.run_id}" if outcome.run_id else "the run"
    print(
        f"error: {run} completed no round, the model is unchanged: {reason}",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_NO_ROUND
