"""What `benchmarks/deploy_round.py` reads from a run's ``metrics.json``: round ends and totals.

:class:`RoundClock` polls the file while the run goes on and notes when each round's history
entry first appears (the *round period*, budget query included, is the time between two such
appearances); :func:`read_metrics` reads the finished file and refuses a run that completed
fewer rounds than asked (with the tail of the run's log).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path


class RoundClock(threading.Thread):
    """Poll ``metrics.json`` and note when each round's entry first appears."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.ends: dict[int, float] = {}

    def run(self) -> None:
        mtime = 0.0
        while not self.stop.is_set():
            try:
                stat = self.path.stat()
                if stat.st_mtime != mtime:
                    mtime = stat.st_mtime
                    now = time.time()
                    for entry in json.loads(self.path.read_text()).get("history", []):
                        self.ends.setdefault(int(entry["round"]), now)
            except (OSError, ValueError, KeyError):
                pass
            self.stop.wait(0.05)

    def periods(self) -> list[float]:
        rounds = sorted(self.ends)
        return [self.ends[b] - self.ends[a] for a, b in itertools.pairwise(rounds)]


def read_metrics(path: Path, rounds: int, log: str) -> dict:
    if not path.is_file():
        raise RuntimeError(f"no {path}; log tail:\n{log[-3000:]}")
    metrics = json.loads(path.read_text())
    if metrics.get("rounds_completed") != rounds:
        raise RuntimeError(f"{path}: {metrics.get('rounds_completed')} rounds\n{log[-3000:]}")
    return metrics
