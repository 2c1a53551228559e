"""Where a deployed message's time goes, from the SuperNodes' own time-stamped log lines.

With ``FLWR_LOG_LEVEL=DEBUG`` Flower's SuperNode stamps every line; per message it logs
``Receiving: <type> message`` (pulled from the SuperLink), ``Received successfully`` (its content
stored), ``Sending: <type> message`` (the ClientApp's reply is ready) and ``Sent successfully``
(pushed). From consecutive messages of one site this module derives, per message:

- ``pull``: Receiving -> Received (fetching the message's objects over TLS);
- ``clientapp``: Received -> Sending (SuperExec picks the task up, a ``flwr-clientapp`` process
  starts, runs the app, and its reply is noticed), the ClientApp's own work included;
- ``push``: Sending -> Sent (uploading the reply over TLS);
- ``wait``: Sent -> the next Receiving (the other sites and the server, plus the idle poll).

Usage: python benchmarks/deploy_timeline.py SITE_LOG [SITE_LOG ...]
"""

from __future__ import annotations

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\S*:\s+(.*)$")
EVENTS = {
    "Receiving:": "receiving",
    "Received successfully": "received",
    "Sending:": "sending",
    "Sent successfully": "sent",
}


def events(text: str) -> list[tuple[str, float, str]]:
    """Return ``(event, unix seconds, message type)`` for each SuperNode message event."""
    out = []
    for raw in text.splitlines():
        match = LINE.search(re.sub(r"\x1b\[[0-9;]*m", "", raw))
        if match is None:
            continue
        stamp, message = match.groups()
        for prefix, name in EVENTS.items():
            if message.startswith(prefix):
                kind = message.split()[1] if name in ("receiving", "sending") else ""
                when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append((name, when, kind))
    return out


def phases(text: str) -> list[dict[str, float | str]]:
    """Return one dict per complete message: its type and the four phases in seconds."""
    evs = events(text)
    rows: list[dict[str, float | str]] = []
    i = 0
    while i + 3 < len(evs):
        names = [e[0] for e in evs[i : i + 4]]
        if names != ["receiving", "received", "sending", "sent"]:
            i += 1
            continue
        (_, t0, kind), (_, t1, _), (_, t2, _), (_, t3, _) = evs[i : i + 4]
        row: dict[str, float | str] = {
            "type": kind, "pull": t1 - t0, "clientapp": t2 - t1, "push": t3 - t2
        }  # fmt: skip
        if i + 4 < len(evs) and evs[i + 4][0] == "receiving":
            row["wait"] = evs[i + 4][1] - t3
        rows.append(row)
        i += 4
    return rows


def summary(texts: list[str], skip_first: int = 0) -> dict[str, float]:
    """Median seconds per phase over all sites' messages after each site's first ``skip_first``."""
    rows = [r for t in texts for r in phases(t)[skip_first:]]
    out: dict[str, float] = {"messages": float(len(rows))}
    for key in ("pull", "clientapp", "push", "wait"):
        values = [float(r[key]) for r in rows if key in r]
        out[key] = statistics.median(values) if values else float("nan")
    return out


if __name__ == "__main__":
    print(summary([Path(p).read_text(errors="replace") for p in sys.argv[1:]]))
