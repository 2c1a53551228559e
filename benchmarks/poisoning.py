"""Poisoning table: one round under attack, against each server-side defense (issue 16).

Protocol: one honest federation on digits (tiny encoder, ssl-fed SecAgg, DP-SGD at the default
ε = 8; ``--quick``: 4 sites x 2 rounds, else 5 sites x 3 rounds) that records every site's
delta of every round (``sim.attack`` with a scale of 1 on site 0 turns the recording on and
submits the honest delta). Its last round is then replayed (:mod:`ssl_fed.attack.replay`) with
sites 0 and 1 malicious and colluding (they know each other's honest deltas of that round):
each attack's updates are aggregated under ``plain`` with and without the per-update range
check, SecAgg with honest encoders (the quantizer's clip + the server's range check), and SecAgg
with the attackers writing raw words, with and without the check. The applied mean is added to
the global model before that round; each cell is the linear-probe (5 labels per class) and kNN
accuracy minus the honest round's, in points, and the largest change of a parameter against the
honest mean. A rejected round leaves the model unchanged ("skip"). One round only: the table
shows how far one round can be pushed, not how training recovers.

Usage: nice -n 10 python benchmarks/poisoning.py [--quick] [--record] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.record import machine, update_section
from ssl_fed.attack import AttackerView, AttackSpec, apply_attack
from ssl_fed.attack.hook import load_record
from ssl_fed.attack.replay import VARIANTS, Outcome, replay_round, secagg_round
from ssl_fed.config import RootConfig, load_config

ATTACKERS = {0, 1}
"""Malicious sites of the replay (when a loaded machine dropped one: the first two that sent)."""
ROWS: list[tuple[str, float | None]] = [
    ("scale", 10.0),
    ("scale", 1000.0),
    ("sign_flip", 10.0),
    ("gaussian", 0.1),
    ("gaussian", 10.0),
    ("lie", None),
    ("min_max", None),
    ("min_sum", None),
    ("backdoor", None),
    ("override", 0.4),
]
QUICK_ROWS = [("scale", 1000.0), ("lie", None), ("override", 0.4)]
TINY = [
    "encoder.width=8",
    "encoder.norm_groups=4",
    "encoder.proj_hidden=16",
    "encoder.proj_dim=8",
    "train.local_epochs=1",
    "eval.draws=3",
    "eval.labels_per_class=[5]",
    "aggregation.query_timeout=300",  # a loaded machine: a slow site is not a dropped one
    "aggregation.stage_timeout=300",
    "aggregation.timeout=600",
]


def base_run(out: Path, sites: int, rounds: int) -> RootConfig:
    """Run (or reuse) the honest, recorded federation; return its config."""
    from simulations.run import run_federation

    cfg = load_config(
        [
            *TINY,
            f"out={out}",
            f"sim.num_sites={sites}",
            f"sim.rounds={rounds}",
            "sim.attack=[{site: 0, kind: scale, strength: 1.0}]",
        ]
    )
    if not (out / "metrics.json").is_file():
        run_federation(cfg)
    return cfg


def last_round_sites(out: Path) -> list[int]:
    """The sites whose update entered the base run's last round (a loaded machine may drop one)."""
    last = json.loads((out / "metrics.json").read_text())["history"][-1]
    if last["skipped"] or len(last["completed"]) < 3:
        raise RuntimeError(f"the base run's last round has no usable aggregate: {last}")
    return list(last["completed"])


def base_minutes(cfg: RootConfig) -> float:
    """Wall time of the base federation (its metrics.json), in minutes."""
    metrics = json.loads((Path(cfg.out) / "metrics.json").read_text())
    return float(metrics["simulation_wall_time_s"]) / 60.0


def evaluator(cfg: RootConfig) -> Any:
    """Return ``accuracy(flat arrays) -> (probe, kNN) | None`` (None: non-finite features)."""
    import torch

    from ssl_fed.data import load_splits
    from ssl_fed.eval.report import evaluate_encoder
    from ssl_fed.fed import arrays as fa
    from ssl_fed.models import build_model

    splits = load_splits(cfg.data)
    train, test = splits.train, splits.test
    assert test is not None
    model = build_model(cfg.encoder, splits.train.channels)
    like = fa.state_to_arrays(fa.federated_state(model, cfg.aggregation.share_heads))

    def accuracy(flat: np.ndarray) -> tuple[float, float] | None:
        if not np.all(np.isfinite(flat)):
            return None
        from ssl_fed.attack import unflatten

        fa.load_arrays(model, unflatten(flat, like), cfg.aggregation.share_heads)
        try:
            with torch.no_grad():
                rep = evaluate_encoder(model.encoder, train, test, cfg.eval)
        except ValueError:
            return None
        report = rep.to_dict()
        return float(next(iter(report["linear_probe"].values()))), float(report["knn_accuracy"])

    return accuracy


def attackers_of(honest: dict[int, np.ndarray]) -> list[int]:
    """Sites 0 and 1 when both sent an update, else the first two that did."""
    return sorted(ATTACKERS) if set(honest) >= ATTACKERS else sorted(honest)[:2]


def attacked_updates(
    honest: dict[int, np.ndarray], kind: str, strength: float | None
) -> dict[int, np.ndarray]:
    """Replace the attackers' honest deltas by the attack's output (same-round knowledge)."""
    attackers = attackers_of(honest)
    known = [honest[a] for a in attackers]
    out = dict(honest)
    for a in attackers:
        view = AttackerView(honest[a], known, 0, len(honest), len(attackers), seed=a)
        out[a] = apply_attack(AttackSpec(a, kind, strength), view)
    return out


def cell(
    acc: tuple[float, float] | None,
    base: tuple[float, float],
    outcome: Outcome,
    honest_mean: np.ndarray,
) -> str:
    """Format one cell: probe and kNN change in points, and the largest parameter shift."""
    if acc is None:
        return "broken (non-finite)"
    change = f"{100 * (acc[0] - base[0]):+.1f} / {100 * (acc[1] - base[1]):+.1f}"
    if outcome.mean is None:
        return f"skip {change}"
    shift = float(np.abs(outcome.mean - honest_mean).max())
    return f"{change} ({shift:.2g})"


def table(cfg: RootConfig, rows: list[tuple[str, float | None]]) -> tuple[str, tuple[float, float]]:
    """Replay the last round for every row; return the markdown table and the honest accuracy."""
    out, rounds = Path(cfg.out), cfg.sim.rounds
    honest = {s: load_record(out, rounds, s)[0] for s in last_round_sites(out)}
    import torch

    final = torch.load(out / "checkpoints" / "last.pt", weights_only=False)["arrays"]
    from ssl_fed.attack import flatten

    applied = secagg_round(honest, set(), cfg.aggregation.clipping_range).mean
    assert applied is not None
    start = flatten(final) - applied  # the global model before the last round
    accuracy = evaluator(cfg)
    base = accuracy(start + applied)
    assert base is not None
    lines = [
        f"| attack (sites {attackers_of(honest)} of {sorted(honest)}) | "
        + " | ".join(VARIANTS)
        + " |",
        "|---" * (len(VARIANTS) + 1) + "|",
    ]
    for kind, strength in rows:
        outcomes = replay_round(
            attacked_updates(honest, kind, strength),
            set(attackers_of(honest)),
            cfg.aggregation.clipping_range,
        )
        cells = []
        for v in VARIANTS:
            o = outcomes[v]
            acc = accuracy(start if o.mean is None else start + o.mean)
            cells.append(cell(acc, base, o, applied))
        label = kind if strength is None else f"{kind} {strength:g}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines), base


def main() -> None:
    """Run the base federation, replay its last round under every attack, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 sites x 2 rounds, 3 attacks")
    p.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    p.add_argument("--out", default="outputs/bench-poisoning")
    args = p.parse_args()
    load = os.getloadavg()[0]
    sites, rounds = (4, 2) if args.quick else (5, 3)
    cfg = base_run(Path(args.out) / ("quick" if args.quick else "full"), sites, rounds)
    started = time.time()
    body, base = table(cfg, QUICK_ROWS if args.quick else ROWS)
    took = time.time() - started
    text = (
        "## Poisoning: one round under attack (`nice -n 10 python benchmarks/poisoning.py"
        + (" --quick" if args.quick else "")
        + " --record`)\n\n"
        f"{machine()}, load average {load:.1f} at the start; the base federation "
        f"{base_minutes(cfg):.1f} min, the replay {took / 60:.1f} min.\n"
        f"Digits, tiny encoder, {sites} sites x {rounds} rounds, DP-SGD ε = 8, c = "
        f"{cfg.aggregation.clipping_range}; the last round (the sites that sent in it: the "
        "table's header) replayed with two of them malicious. Honest round: linear probe "
        f"(5 labels per class, 3 draws) {100 * base[0]:.1f} %, kNN {100 * base[1]:.1f} %. "
        "Cell: probe / kNN change in points (largest change of a parameter against the honest "
        "mean); `skip`: the server rejected the round and kept the model. Protocol and the "
        "bounds: benchmarks/poisoning.py, docs/poisoning.md.\n\n" + body
    )
    print(text)
    if args.record:
        update_section("poisoning", text)


if __name__ == "__main__":
    main()
