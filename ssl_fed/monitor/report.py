"""``ssl-fed monitor OUT_DIR``: the drift and slice report of a finished or running run.

Reads ``OUT_DIR/drift.jsonl`` (one line per site and round, written by the monitor-level
simulation, :mod:`simulations.drift`) or, for a federated run (``ssl-fed simulate``), the
``drift_alarm`` bits the server received each round (``metrics.json`` ``history``), and
``OUT_DIR/metrics.json`` (its ``slices`` and ``reliability``, written by ``ssl-fed simulate``
or ``train-local``), prints a text report and
writes ``OUT_DIR/monitor.png`` (alarms per site and round) and ``OUT_DIR/reliability.png``.

The alarm a summary counts is the server's view: the released bit under ``dp-alarm`` and the
site's local alert under ``local`` (a simulation sees every site's log; a deployed server sees
only released bits).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

DRIFT_LOG = "drift.jsonl"


def read_drift_log(out_dir: Path) -> list[dict[str, Any]]:
    """Return the drift log's records; :class:`DataError` naming the file if unreadable."""
    from ssl_fed.data import DataError  # here, not at the top: `ssl-fed --help` stays light

    path = out_dir / DRIFT_LOG
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read the drift log ({err})") from None


def alarm_of(record: dict[str, Any]) -> bool:
    """Return the alarm as the server sees it (released bit, else the local alert)."""
    released = record.get("released")
    return bool(released) if released is not None else bool(record["local_alarm"])


def summarize(records: list[dict[str, Any]], latched: bool) -> dict[str, Any]:
    """Return detection delay per drifted site, false alarms over quiet site-rounds, ε per site.

    A quiet site-round (no drift in force) raises a *false alarm* when its alarm goes up: every
    alarm round if alarms are per round, only the first round of a standing alarm if the
    mechanism latches (``svt``). A drifted site's delay is ``1 +`` rounds from its drift's start
    to its first alarm (1: caught in the first drifted round); ``None`` if never.
    """
    by_site: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_site[int(rec["site"])].append(rec)
    quiet = raised = 0
    fa_sites: set[int] = set()
    delays: dict[str, int | None] = {}
    eps: dict[str, float] = {}
    for site, recs in sorted(by_site.items()):
        recs.sort(key=lambda r: r["round"])
        before = False
        for rec in recs:
            alarm = alarm_of(rec)
            if rec["drift"] is None:
                quiet += 1
                new = alarm and not (latched and before)
                raised += int(new)
                if new:
                    fa_sites.add(site)
            before = alarm
        drifted = [r for r in recs if r["drift"] is not None]
        if drifted:
            start = drifted[0]["round"]
            hit = next((r["round"] for r in drifted if alarm_of(r)), None)
            delays[str(site)] = None if hit is None else hit - start + 1
        eps[str(site)] = float(recs[-1].get("epsilon_total", 0.0))
    within = [d for d in delays.values() if d is not None and d <= 2]
    return {
        "quiet_site_rounds": quiet,
        "false_alarms": raised,
        "false_alarm_rate": raised / quiet if quiet else 0.0,
        "sites_with_false_alarm": len(fa_sites),
        "detection_delay": delays,
        "detected_within_2": len(within) / len(delays) if delays else None,
        "epsilon_per_site": eps,
        "epsilon_max": max(eps.values(), default=0.0),
    }


def plot_alarms(records: list[dict[str, Any]], path: Path) -> Path:
    """Sites x rounds grid: alarm (dark), drift in force (outlined)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    sites = sorted({int(r["site"]) for r in records})
    rounds = sorted({int(r["round"]) for r in records})
    grid = np.zeros((len(sites), len(rounds)))
    fig, ax = plt.subplots(figsize=(max(4, len(rounds) / 5), max(2, len(sites) / 3)))
    for r in records:
        i, j = sites.index(int(r["site"])), rounds.index(int(r["round"]))
        grid[i, j] = float(alarm_of(r))
        if r["drift"] is not None:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=0.6))
    ax.imshow(grid, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set(xlabel="round", ylabel="site", title="drift alarms (dark) / injected drift (red)")
    ax.set_yticks(range(len(sites)), [str(s) for s in sites])
    ax.set_xticks(range(0, len(rounds), max(1, len(rounds) // 10)))
    ax.set_xticklabels([str(rounds[k]) for k in ax.get_xticks().astype(int)])
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def federated_drift_records(out_dir: Path, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a federated run's released alarms (``metrics.json`` history) as drift records.

    The server sees only released bits; which site-rounds carried injected drift comes from the
    run's own ``config.yaml`` (``sim.drift``, the simulation operator's plan).
    """
    from ssl_fed.monitor.inject import DriftSpec, active_drift

    specs: list[DriftSpec] = []
    config = out_dir / "config.yaml"
    if config.exists():
        import yaml

        sim = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("sim") or {}
        specs = [DriftSpec(**d) for d in sim.get("drift") or []]
    records = []
    for h in metrics.get("history", []):
        for site, bit in sorted((h.get("drift_alarm") or {}).items(), key=lambda kv: int(kv[0])):
            spec = active_drift(specs, int(site), int(h["round"]))
            records.append(
                {
                    "site": int(site),
                    "round": int(h["round"]),
                    "released": int(bit),
                    "local_alarm": False,
                    "drift": None if spec is None else spec.kind,
                }
            )
    return records


def _federated_lines(out_dir: Path, metrics: dict[str, Any]) -> list[str]:
    records = federated_drift_records(out_dir, metrics)
    if not records:
        return []
    s = summarize(records, latched=True)
    lines = [
        "drift alarms released in federated rounds (dp-alarm, as the server saw them):",
        f"false alarms: {s['false_alarms']} / {s['quiet_site_rounds']} quiet site-rounds",
    ]
    for site, delay in s["detection_delay"].items():
        seen = f"detected after {delay} round(s)" if delay else "not detected"
        lines.append(f"site {site}: drift {seen}")
    lines.append("alarm ε: in each site's ledger (release records; epsilon_per_site includes it)")
    lines.append(f"plot: {plot_alarms(records, out_dir / 'monitor.png')}")
    return lines


def report_lines(out_dir: Path) -> list[str]:
    """Build the text report and write the PNGs; raise :class:`DataError` if there is nothing."""
    from ssl_fed.data import DataError
    from ssl_fed.eval.slices import reliability_diagram

    lines: list[str] = []
    if (out_dir / DRIFT_LOG).exists():
        records = read_drift_log(out_dir)
        meta = json.loads((out_dir / "drift_summary.json").read_text(encoding="utf-8"))
        s = summarize(records, latched=bool(meta.get("latched", False)))
        lines += [
            f"drift monitor: release={meta.get('release')} mechanism={meta.get('mechanism')}",
            f"false alarms: {s['false_alarms']} / {s['quiet_site_rounds']} quiet site-rounds "
            f"({100 * s['false_alarm_rate']:.1f} %) at {s['sites_with_false_alarm']} site(s)",
        ]
        for site, delay in s["detection_delay"].items():
            seen = f"detected after {delay} round(s)" if delay else "not detected"
            lines.append(f"site {site}: drift {seen}")
        lines.append(f"alarm ε per site: max {s['epsilon_max']:.3f}")
        lines.append(f"plot: {plot_alarms(records, out_dir / 'monitor.png')}")
    metrics_path = out_dir / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        if not (out_dir / DRIFT_LOG).exists():
            lines += _federated_lines(out_dir, metrics)
        slices = metrics.get("slices")
        if slices:
            lines.append("slices (linear probe, all labels):")
            lines.append(f"  {'class':>5} {'prec':>6} {'recall':>6} {'F1':>6} {'n':>5}")
            for c in slices["f1"]:
                lines.append(
                    f"  {c:>5} {slices['precision'][c]:6.3f} {slices['recall'][c]:6.3f} "
                    f"{slices['f1'][c]:6.3f} {slices['support'][c]:5d}"
                )
            m = slices["macro"]
            lines.append(f"  macro  P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}")
            lines.append(f"  worst slice: {slices['worst_slice']}; ECE {metrics.get('ece', 0):.3f}")
        if metrics.get("reliability"):
            rows = [tuple(r) for r in metrics["reliability"]]
            path = reliability_diagram(rows, out_dir / "reliability.png")  # type: ignore[arg-type]
            lines.append(f"reliability diagram: {path}")
    if not lines:
        raise DataError(
            f"{out_dir}: no {DRIFT_LOG} and no metrics.json with slices; point ssl-fed monitor at "
            "the out= directory of a simulation (python -m simulations.drift, ssl-fed simulate)"
        )
    return lines


def cmd_monitor(args: argparse.Namespace) -> int:
    """``ssl-fed monitor OUT_DIR``: print the drift and slice report, write the PNGs."""
    from ssl_fed.data import DataError

    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: no such run directory; give the out= of a run")
    print("\n".join(report_lines(out_dir)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``monitor`` to the ``ssl-fed`` parser."""
    text = "drift and slice report of a run (text, monitor.png, reliability.png)"
    p = sub.add_parser("monitor", help=text, description=text)
    p.add_argument("out_dir", metavar="OUT_DIR", help="the run's out= directory")
    p.set_defaults(func=cmd_monitor)


def drift_scalars(released: dict[int, int]) -> dict[str, float]:
    """TensorBoard scalars of one round's released alarms ``{site: bit}`` (server side).

    Tags ``drift/alarm/site_<k>`` (0/1, as released) and ``drift/alarms`` (how many sites). The
    server's tracker calls it with the ``drift-alarm`` values the guard let through.
    """
    out = {f"drift/alarm/site_{k}": float(v) for k, v in sorted(released.items())}
    out["drift/alarms"] = float(sum(released.values()))
    return out
