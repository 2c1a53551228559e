"""Protocol-only round cost: ssl-fed SecAgg+ vs Flower's stock SecAgg+ vs plain aggregation.

One Ray simulation per (params, sites) row, running the three methods back to back on the same
warm actors (num_cpus=1 per client). Client compute is trivial (add a constant), so the times are
protocol + transport. Each method runs ``--warmup`` untimed rounds, then ``--rounds`` timed ones.

    python benchmarks/secagg_round.py           # 1M and 11M params x 5 and 10 sites
    python benchmarks/secagg_round.py --quick   # 1M x 5 only (smoke)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ssl_fed.secagg import SecAggConfig, run_secagg_round, secagg_mod, spec_from_arrays
from ssl_fed.secagg.params import resolve_round

START, END = "<!-- secagg_round:start -->", "<!-- secagg_round:end -->"
RESULTS = Path(__file__).with_name("RESULTS.md")


def site_delta(pid: int) -> float:
    return 0.001 * (pid + 1)


def site_weight(pid: int) -> int:
    return 10 * (pid + 1)


def make_client() -> ClientApp:
    app = ClientApp()

    def local(arrays: list[np.ndarray], pid: int) -> list[np.ndarray]:
        return [(a + site_delta(pid)).astype(np.float32) for a in arrays]

    def reply_new_api(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        rec = msg.content["arrays"]
        names = list(rec.keys())
        new = local([rec[k].numpy() for k in names], pid)
        return Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({k: Array(a) for k, a in zip(names, new, strict=True)}),
                    "metrics": MetricRecord({"num-examples": site_weight(pid)}),
                }
            ),
            reply_to=msg,
        )

    @app.train("plain")
    def plain(msg: Message, context: Context) -> Message:
        return reply_new_api(msg, context)

    @app.train("secagg", mods=[secagg_mod])
    def ours(msg: Message, context: Context) -> Message:
        return reply_new_api(msg, context)

    @app.train(mods=[secaggplus_mod])
    def stock(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        new = local(parameters_to_ndarrays(fitins.parameters), pid)
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(new), site_weight(pid), {})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    return app


def make_server(
    n_params: int, n_sites: int, args: argparse.Namespace, out: dict[str, Any]
) -> ServerApp:
    app = ServerApp()
    init = [
        np.random.default_rng(0).normal(0, 0.1, n_params - 1000).astype(np.float32),
        np.zeros(1000, np.float32),
    ]
    rec = ArrayRecord({"w": Array(init[0]), "b": Array(init[1])})
    weights = [site_weight(p) for p in range(n_sites)]
    exact_delta = sum(site_delta(p) * w for p, w in enumerate(weights)) / sum(weights)

    def err(arrays: list[np.ndarray]) -> float:
        return max(
            float(np.abs(a.astype(np.float64) - (i + exact_delta)).max())
            for a, i in zip(arrays, init, strict=True)
        )

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes: list[int] = []
        while len(nodes) < n_sites:
            nodes = list(grid.get_node_ids())
            time.sleep(0.1)
        total = args.warmup + args.rounds
        content = RecordDict({"arrays": rec, "config": ConfigRecord({"lr": 0.1})})

        times, errs = [], []
        for r in range(total):  # plain: what the Message-API FedAvg does per round
            t0 = time.perf_counter()
            msgs = [Message(content, dst_node_id=n, message_type="train.plain") for n in nodes]
            reps = list(grid.send_and_receive(msgs, timeout=120))
            arrs = [[m.content["arrays"][k].numpy() for k in ("w", "b")] for m in reps]
            ws = [float(m.content["metrics"]["num-examples"]) for m in reps]
            mean = [
                sum(a[i] * w for a, w in zip(arrs, ws, strict=True)) / sum(ws) for i in range(2)
            ]
            if r >= args.warmup:
                times.append(time.perf_counter() - t0)
            errs.append(err(mean))
        out["plain"] = (times, max(errs), {})

        cfg = SecAggConfig(clip_range=4.0, max_weight=1000, stage_timeout=60, train_timeout=120)
        times, errs, split = [], [], []
        for r in range(total):
            t0 = time.perf_counter()
            res = run_secagg_round(
                grid, nodes, content, spec_from_arrays(rec), cfg, message_type="train.secagg"
            )
            assert not hasattr(res, "reason"), res
            if r >= args.warmup:
                times.append(time.perf_counter() - t0)
                split.append(res.timings)
            errs.append(err([res.arrays["w"], res.arrays["b"]]))
        keys = sorted({k for s in split for k in s})
        out["ours"] = (
            times,
            max(errs),
            {k: statistics.mean(s.get(k, 0.0) for s in split) for k in keys},
        )

        for phase, n_rounds in (("warm", args.warmup), ("timed", args.rounds)):
            if n_rounds == 0:
                continue
            strategy = LegacyFedAvg(
                fraction_fit=1.0,
                fraction_evaluate=0.0,
                min_fit_clients=n_sites,
                min_available_clients=n_sites,
                initial_parameters=ndarrays_to_parameters(init),
            )
            ctx = LegacyContext(
                context=context, config=ServerConfig(num_rounds=n_rounds), strategy=strategy
            )
            k = resolve_round(n_sites, cfg).k
            shares = args.stock_shares or k + 1 + (k % 2)  # stock needs an odd ring size
            t0 = time.perf_counter()
            DefaultWorkflow(
                fit_workflow=SecAggPlusWorkflow(
                    num_shares=shares,
                    reconstruction_threshold=shares // 2 + 1,
                    max_weight=1000.0,
                    clipping_range=4.0,
                    timeout=120,
                )
            )(grid, ctx)
            per = (time.perf_counter() - t0) / n_rounds
            if phase == "timed":
                final = [ctx.state.array_records["parameters"][k].numpy() for k in ("0", "1")]
                stock_err = max(
                    float(np.abs(f - (i + n_rounds * exact_delta)).max())
                    for f, i in zip(final, init, strict=True)
                )
                out["stock"] = ([per], stock_err, {})

    return app


def run_row(n_params: int, n_sites: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    run_simulation(
        make_server(n_params, n_sites, args, out),
        make_client(),
        num_supernodes=n_sites,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    return out


SPLIT_KEYS = [
    ("mask generation (sites, summed)", "sites.mask"),
    ("fixed-point encoding (sites, summed)", "sites.encode"),
    ("mask removal (server)", "server.mask"),
    ("Shamir split (sites, summed)", "sites.shamir"),
    ("Shamir combine (server)", "server.shamir"),
    ("encryption + decryption (sites, summed)", "sites.encrypt"),
    ("serialization (sites summed + server)", "serialize"),
    ("train handler (sites, summed)", "sites.train"),
    ("stage advertise (wall)", "stage.advertise"),
    ("stage share (wall)", "stage.share"),
    ("stage collect (wall)", "stage.collect"),
    ("stage unmask (wall)", "stage.unmask"),
]


def render(rows: list[tuple[int, int, dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}, no GPU), "
        f"Python {platform.python_version()}, Ray simulation with num_cpus=1 per client. "
        f"Date: {datetime.date.today().isoformat()}. Command: `python benchmarks/secagg_round.py"
        f"{' --quick' if args.quick else ''}`; {args.warmup} warm-up + {args.rounds} timed rounds "
        "per method, mean seconds per round; trivial client compute (protocol + transport only).",
        "",
        "ssl-fed SecAgg+: k = min(n-1, 2*ceil(log2 n)) neighbours, t = k//2+1, 256-bit ChaCha20 "
        "masks, uint32 words, clip 4.0. Stock: Flower 1.42 `SecAggPlusWorkflow` "
        f"(num_shares={args.stock_shares or 'k+1, the same neighbourhood as ours'}, "
        "threshold=shares//2+1, clip 4.0, max_weight 1000, int64 "
        "words, 32-bit-seeded masks) on the legacy `DefaultWorkflow`. Plain: one "
        "`grid.send_and_receive` train round + numpy weighted mean "
        "(what the Message-API FedAvg does).",
        "",
        "| params | sites | plain s | ssl-fed SecAgg+ s | stock SecAgg+ s | ours / plain | "
        "stock / plain | ours / stock | max err ours | max err stock |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_params, n_sites, out in rows:
        p, o, s = (statistics.mean(out[m][0]) for m in ("plain", "ours", "stock"))
        lines.append(
            f"| {n_params / 1e6:.0f}M | {n_sites} | {p:.3f} | {o:.3f} | {s:.3f} | {o / p:.2f}x | "
            f"{s / p:.2f}x | {o / s:.2f}x | {out['ours'][1]:.1e} | {out['stock'][1]:.1e} |"
        )
    lines += [
        "",
        "Time split of the ssl-fed round (seconds per round; site times summed over sites, "
        "which run 2 at a time; stage walls include transport and Ray scheduling):",
        "",
    ]
    head = "| part | " + " | ".join(f"{p / 1e6:.0f}M x {n}" for p, n, _ in rows) + " |"
    lines += [head, "|---|" + "---|" * len(rows)]
    for label, key in SPLIT_KEYS:
        vals = []
        for _, _, out in rows:
            split = out["ours"][2]
            v = (
                split.get("sites.serialize", 0.0) + split.get("server.serialize", 0.0)
                if key == "serialize"
                else split.get(key, 0.0)
            )
            vals.append(f"{v:.3f}")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    section = f"{START}\n## SecAgg round cost (benchmarks/secagg_round.py)\n\n{text}{END}\n"
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if START in old and END in old:
        head, rest = old.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + section + tail
    else:
        new = old.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only 1M params x 5 sites")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--stock-shares",
        type=int,
        default=0,
        help="stock num_shares (odd); 0 = our k + 1 (same neighbourhood)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args()
    grid = (
        [(1_000_000, 5)]
        if args.quick
        else [(1_000_000, 5), (1_000_000, 10), (11_000_000, 5), (11_000_000, 10)]
    )
    rows = []
    for n_params, n_sites in grid:
        t0 = time.perf_counter()
        rows.append((n_params, n_sites, run_row(n_params, n_sites, args)))
        print(f"row {n_params} x {n_sites} done in {time.perf_counter() - t0:.0f} s", flush=True)
    text = render(rows, args)
    print(text)
    if not args.no_write:
        write_results(text)


if __name__ == "__main__":
    main()
