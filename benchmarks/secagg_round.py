"""Protocol-only round cost: ssl-fed SecAgg+ vs Flower's stock SecAgg+ vs plain aggregation.

One Ray simulation per (params, sites) row, on the same warm actors (num_cpus=1 per client).
Client compute is trivial (add a constant), so the times are protocol + transport. Each
repetition runs the methods back to back (plain, ours, stock: interleaved, so all see the same
load); the first ``--warmup`` repetitions are untimed. ``--record`` writes the RESULTS.md section
through benchmarks/record.py, with the machine and the 1-min load average before and after.

    python benchmarks/secagg_round.py --record             # 1M and 11M params x 5 and 10 sites
    python benchmarks/secagg_round.py --rows 1M:10,11M:10  # chosen rows
    python benchmarks/secagg_round.py --rows 0.1M:3 --no-stock  # smoke
"""

from __future__ import annotations

import argparse
import os
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
from benchmarks.record import update_section
from benchmarks.secagg_round_report import render
from ssl_fed.fed.secagg_driver import run_secagg_round, spec_from_arrays
from ssl_fed.fed.secagg_mod import secagg_mod
from ssl_fed.secagg import AggregateResult, SecAggConfig
from ssl_fed.secagg.params import resolve_round


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
        arrays = ArrayRecord({k: Array(a) for k, a in zip(names, new, strict=True)})
        metrics = MetricRecord({"num-examples": site_weight(pid)})
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

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
        content = RecordDict({"arrays": rec, "config": ConfigRecord({"lr": 0.1})})
        cfg = SecAggConfig(clip_range=4.0, max_weight=1000, stage_timeout=60, train_timeout=120)
        methods = {
            "plain": lambda: plain_round(grid, nodes, content),
            "ours": lambda: ours_round(grid, nodes, content, rec, cfg),
        }
        if not args.no_stock:
            methods["stock"] = lambda: stock_round(grid, context, init, n_sites, cfg, args)
        for m in methods:
            out[m] = ([], 0.0, [])
        for rep in range(args.warmup + args.rounds):  # interleaved: same load for every method
            for m, run in methods.items():
                t0 = time.perf_counter()
                arrays, split = run()
                dt = time.perf_counter() - t0
                times, worst, splits = out[m]
                out[m] = (times, max(worst, err(arrays)), splits)
                if rep >= args.warmup:
                    times.append(dt)
                    splits.append(split)

    return app


def plain_round(
    grid: Grid, nodes: list[int], content: RecordDict
) -> tuple[list[np.ndarray], dict[str, float]]:
    """What the Message-API FedAvg does per round: one train exchange, a weighted mean."""
    msgs = [Message(content, dst_node_id=n, message_type="train.plain") for n in nodes]
    reps = list(grid.send_and_receive(msgs, timeout=120))
    arrs = [[m.content["arrays"][k].numpy() for k in ("w", "b")] for m in reps]
    ws = [float(m.content["metrics"]["num-examples"]) for m in reps]
    mean = [sum(a[i] * w for a, w in zip(arrs, ws, strict=True)) / sum(ws) for i in range(2)]
    return mean, {}


def ours_round(
    grid: Grid, nodes: list[int], content: RecordDict, rec: ArrayRecord, cfg: SecAggConfig
) -> tuple[list[np.ndarray], dict[str, float]]:
    """One ssl-fed SecAgg+ round through the driver, as the aggregator runs it."""
    res = run_secagg_round(
        grid, nodes, content, spec_from_arrays(rec), cfg, message_type="train.secagg"
    )
    if not isinstance(res, AggregateResult):
        raise RuntimeError(f"ssl-fed SecAgg+ round skipped: {res.reason}")
    return [res.arrays["w"], res.arrays["b"]], dict(res.timings)


def stock_round(
    grid: Grid,
    context: Context,
    init: list[np.ndarray],
    n_sites: int,
    cfg: SecAggConfig,
    args: argparse.Namespace,
) -> tuple[list[np.ndarray], dict[str, float]]:
    """One round of Flower's stock SecAgg+ workflow from the same initial parameters."""
    strategy = LegacyFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n_sites,
        min_available_clients=n_sites,
        initial_parameters=ndarrays_to_parameters(init),
    )
    ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
    k = resolve_round(n_sites, cfg).k
    shares = args.stock_shares or k + 1 + (k % 2)  # stock needs an odd ring size
    DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=shares,
            reconstruction_threshold=shares // 2 + 1,
            max_weight=1000.0,
            clipping_range=4.0,
            timeout=120,
        )
    )(grid, ctx)
    return [ctx.state.array_records["parameters"][k].numpy() for k in ("0", "1")], {}


def run_row(n_params: int, n_sites: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    run_simulation(
        make_server(n_params, n_sites, args, out),
        make_client(),
        num_supernodes=n_sites,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    return out


def parse_rows(text: str) -> list[tuple[int, int]]:
    """``"1M:10,11M:10"`` -> [(1_000_000, 10), (11_000_000, 10)]."""
    rows = []
    for item in text.split(","):
        params, sites = item.strip().split(":")
        rows.append((int(float(params.rstrip("Mm")) * 1_000_000), int(sites)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1M:5,1M:10,11M:5,11M:10", help="params:sites,...")
    parser.add_argument("--rounds", type=int, default=3, help="timed repetitions per method")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-stock", action="store_true", help="skip Flower's stock SecAgg+")
    parser.add_argument(
        "--stock-shares",
        type=int,
        default=0,
        help="stock num_shares (odd); 0 = our k + 1 (same neighbourhood)",
    )
    parser.add_argument("--record", action="store_true", help="write the RESULTS.md section")
    args = parser.parse_args()
    grid = parse_rows(args.rows)
    load_before = os.getloadavg()[0]
    rows = []
    for n_params, n_sites in grid:
        t0 = time.perf_counter()
        rows.append((n_params, n_sites, run_row(n_params, n_sites, args)))
        print(f"row {n_params} x {n_sites} done in {time.perf_counter() - t0:.0f} s", flush=True)
    text = render(rows, args, (load_before, os.getloadavg()[0]))
    print(text)
    if args.record:
        update_section("secagg_round", text)


if __name__ == "__main__":
    main()
