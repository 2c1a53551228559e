"""What the operator sees while a federation runs: one line per round and a closing table.

Each round ends with one line on stderr (the same stream as the CLI's ``error:`` lines, so that
stdout keeps only the paths a script may read)::

    round 2/5: sites sampled/completed/dropped/declined 3/3/0/0, ε max so far 1.234,
    site-local losses {'total': 0.52}, 14.2 s/round, ETA 42 s

(one line in the terminal). ``site-local losses`` appear only in a simulation, whose operator
owns every site (:meth:`ssl_fed.fed.tracking.RunTracker.site_local_losses`); a deployed server never
sees a loss. The ETA is the mean wall time of the rounds this process ran times the rounds left.
A skipped round says so and why. At the end, :func:`summary_table` prints every round of the run
(resumed rounds included) from ``metrics.json``'s history, so the table and the file agree.
"""

from __future__ import annotations

import sys
from typing import Any

COLUMNS = ("round", "sampled", "completed", "dropped", "declined", "ε max", "s", "status")


def emit(text: str) -> None:
    """Write ``text`` to stderr at once (the round may be followed by a long silence)."""
    print(text, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``: coarse enough to read at a glance."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class RoundProgress:
    """Formats the per-round line; keeps the wall times of this process's rounds for the ETA."""

    def __init__(self, last_round: int) -> None:
        self.last_round = last_round
        self.walls: list[float] = []

    def line(self, entry: dict[str, Any]) -> str:
        """Return the progress line of one history entry (see the module docstring)."""
        self.walls.append(float(entry["wall_time_s"]))
        counts = "/".join(
            str(len(entry[k])) for k in ("sampled", "completed", "dropped", "declined")
        )
        parts = [
            f"round {entry['round']}/{self.last_round}: sites sampled/completed/dropped/declined "
            f"{counts}",
            f"ε max so far {entry['epsilon_max']:.3f}",
        ]
        if entry.get("unidentified_silent"):
            parts.append(f"{entry['unidentified_silent']} node(s) never answered")
        if entry.get("site_local_losses"):
            losses = ", ".join(f"{k} {v:.4f}" for k, v in entry["site_local_losses"].items())
            parts.append(f"site-local losses: {losses}")
        mean = sum(self.walls) / len(self.walls)
        left = max(0, self.last_round - int(entry["round"]))
        parts.append(f"{mean:.1f} s/round, ETA {_duration(mean * left)}")
        if entry.get("skipped"):
            parts.append(f"SKIPPED (model unchanged): {entry['skipped']}")
        return ", ".join(parts)


def summary_table(history: list[dict[str, Any]]) -> str:
    """Return a fixed-width table of every round in ``history`` (empty string for no rounds)."""
    if not history:
        return ""
    rows = [list(COLUMNS)]
    for h in history:
        rows.append(
            [
                str(h["round"]),
                *(str(len(h.get(k, []))) for k in ("sampled", "completed", "dropped", "declined")),
                f"{h.get('epsilon_max', 0.0):.3f}",
                f"{h.get('wall_time_s', 0.0):.1f}",
                "skipped" if h.get("skipped") else "ok",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    completed = sum(1 for h in history if not h.get("skipped"))
    lines.append(
        f"{completed} of {len(history)} rounds completed, {len(history) - completed} skipped"
    )
    return "\n".join(lines)
