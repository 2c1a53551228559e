"""Deployed round time / simulated round time, same app and config, 3 sites, DP + SecAgg.

For each aggregation (``secagg``, ssl-fed's own SecAgg+, the default; optionally Flower's
``flower-secaggplus``) and each repeat, interleaved, this runs:

- the simulation: ``python -m simulations.run`` (Ray, 3 virtual sites, 1 CPU each);
- a real deployment on 127.0.0.1, started fresh for the run (the site ledgers must be new):
  ``ssl-fed pki init``-style CA + certificates, ``ssl-fed server start`` (TLS + node
  authentication), ``ssl-fed server enroll`` x3, ``ssl-fed site start`` x3 (warm worker), then
  ``ssl-fed run``; everything is stopped by process group afterwards, even on failure.

Both get the same overrides (default cnn_gn encoder, joint task, DP-SGD at ε=8, ``--rounds``
rounds, all 3 sites every round) and the same images per site: the simulation's own partitions of
the digits training split (Dirichlet α=0.5, seed 0) are written as unlabelled ``.npz`` files for
the deployed sites, so site i trains on identical data in both. Per-round times are the server's
``history[*].wall_time_s`` from each ``metrics.json`` (sampling done -> round checkpointed: the
SecAgg stages, training, aggregation, evaluation when due); the budget query before each round is
outside it, so the script also reports the *round period*, the time between consecutive
``metrics.json`` rewrites (query included), polled every 0.05 s. Round 1 (warm-up) is reported
apart; the ratio uses rounds 2..R. Goal (issue 4): deployed / simulated <= 1.5x.

The sites run with ``FLWR_LOG_LEVEL=DEBUG`` so that their SuperNode lines carry timestamps;
:mod:`benchmarks.deploy_timeline` turns them into the per-message phases (pull, ClientApp, push,
wait) reported under the tables.

Usage: python benchmarks/deploy_round.py [--rounds 3] [--repeats 1]
       [--aggregation secagg flower-secaggplus] [--record]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.deploy_round_metrics import RoundClock, read_metrics  # noqa: E402
from benchmarks.deploy_round_report import (  # noqa: E402
    RATIO_HEAD,
    TABLE_HEAD,
    Run,
    aggregation_rows,
    render,
    stage_table_rows,
    timeline_row,
)
from benchmarks.deploy_timeline import summary as site_phases  # noqa: E402
from benchmarks.record import update_section  # noqa: E402
from tests.deploy.procs import BIN, deploy_env, free_port, processes, wait_for_port  # noqa: E402

NUM_SITES = 3
SOCKETS = ("worker.sock", "clientapp.sock")


def overrides(aggregation: str, rounds: int) -> list[str]:
    return [
        f"sim.num_sites={NUM_SITES}",
        f"sim.rounds={rounds}",
        "eval.draws=1",
        "eval.labels_per_class=[1,5]",
        f"aggregation={aggregation}",
    ]


def write_site_data(cfg_overrides: list[str], folder: Path) -> list[Path]:
    """Write the simulation's site partitions as unlabelled ``.npz`` files (site i = file i)."""
    import numpy as np

    from ssl_fed.config import load_config
    from ssl_fed.data import load_splits
    from ssl_fed.data.partition import partition_dataset

    cfg = load_config(cfg_overrides)
    sites = partition_dataset(load_splits(cfg.data).train, cfg.partition, NUM_SITES)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, site in enumerate(sites):
        path = folder / f"site_{i}.npz"
        np.savez(path, images=site.images.numpy())
        paths.append(path)
    return paths


def simulate(aggregation: str, rounds: int, work: Path) -> Run:
    out = work / "out"
    over = overrides(aggregation, rounds)
    cmd = [sys.executable, "-m", "simulations.run", *over, f"out={out}",
           f"hydra.run.dir={work / 'hydra'}"]  # fmt: skip
    env = deploy_env(work / "flwr")
    clock = RoundClock(out / "metrics.json")
    clock.start()
    started = time.time()
    with processes(work / "logs") as procs:
        proc = procs.start("simulate", cmd, env)
        code = proc.wait(timeout=1800)
        log = procs.log("simulate")
    wall = time.time() - started
    clock.stop.set()
    if code != 0:
        raise RuntimeError(f"simulation exited {code}:\n{log[-3000:]}")
    return read_metrics(out / "metrics.json", rounds, log), clock.periods(), wall


def deploy(
    aggregation: str, rounds: int, work: Path, data: list[Path], timelines: list[str]
) -> Run:
    from ssl_fed.deploy.pki import init_pki, site_keygen

    pki = init_pki(work / "pki", ["127.0.0.1", "localhost"])
    keys = [site_keygen(work / "keys", f"site{i}") for i in range(NUM_SITES)]
    env = deploy_env(work / "flwr-cli")
    # time-stamped SuperNode lines (timeline); one torch thread per site, as Ray gives each
    # simulated site with 1 CPU (it sets OMP_NUM_THREADS to the actor's CPUs)
    site_env = env | {"FLWR_LOG_LEVEL": "DEBUG", "OMP_NUM_THREADS": "1"}
    policy = work / "site-policy.yaml"  # the default policy accepts ssl-fed's SecAgg+ only
    policy.write_text(f"aggregations: [{aggregation}]\n")
    port, control = free_port(), free_port()
    link, operator = f"127.0.0.1:{port}", f"127.0.0.1:{control}"
    ssl_fed = str(BIN / "ssl-fed")
    out = work / "out"
    with processes(work / "logs") as procs:
        procs.start(
            "superlink",
            [ssl_fed, "server", "start", "--state-dir", str(work / "link"),
             "--host", "127.0.0.1", "--port", str(port), "--control-port", str(control),
             "--pki", str(work / "pki")],
            env,
        )  # fmt: skip
        wait_for_port(port)
        wait_for_port(control)
        for i, (_, public) in enumerate(keys):
            enroll = procs.start(
                f"enroll{i}",
                [ssl_fed, "server", "enroll", str(public), "--superlink", operator,
                 "--ca", str(pki.ca_cert)],
                env,
            )  # fmt: skip
            if enroll.wait(timeout=120) != 0:
                raise RuntimeError(procs.log(f"enroll{i}"))
        for i, ((private, _), path) in enumerate(zip(keys, data, strict=True)):
            procs.start(
                f"site{i}",
                [ssl_fed, "site", "start", "--data", str(path), "--state-dir",
                 str(work / f"state_{i}"), "--superlink", link, "--ca", str(pki.ca_cert),
                 "--key", str(private), "--epsilon-budget", "8", "--policy", str(policy),
                 "--port", str(free_port()),
                 "--site-id", str(i)],
                site_env,
            )  # fmt: skip
        # wait until every site's warm worker and ClientApp zygote are up (their sockets exist),
        # so that the run's first round is not also paying the sites' start-up
        deadline = time.time() + 300
        socks = [work / f"state_{i}" / n for i in range(NUM_SITES) for n in SOCKETS]
        while not all(sock.exists() for sock in socks):
            if time.time() > deadline:
                raise RuntimeError("site workers did not start:\n" + procs.log("site0")[-2000:])
            time.sleep(0.2)
        clock = RoundClock(out / "metrics.json")
        clock.start()
        started = time.time()
        run = procs.start(
            "run",
            [ssl_fed, "run", *overrides(aggregation, rounds), f"out={out}",
             "--superlink", operator, "--ca", str(pki.ca_cert)],
            env,
        )  # fmt: skip
        code = run.wait(timeout=1800)
        wall = time.time() - started
        clock.stop.set()
        log = procs.log("run")
        timelines.extend(procs.log(f"site{i}") for i in range(NUM_SITES))
    if code != 0:
        raise RuntimeError(f"ssl-fed run exited {code}:\n{log[-3000:]}")
    return read_metrics(out / "metrics.json", rounds, log), clock.periods(), wall


def clientapp_import_s(repeats: int = 3) -> float:
    """Median seconds for a fresh Python to import flwr-clientapp and ssl-fed's thin ClientApp.

    This is the floor of what each message costs a deployed site on top of the SuperNode's
    polling: flwr 1.42 starts one ``flwr-clientapp`` process per message.
    """
    code = "import flwr.supernode.cli.flwr_clientapp, client.app"
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per run (>= 2)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved sim/deploy pairs")
    parser.add_argument(
        "--aggregation", nargs="+", default=["secagg", "flower-secaggplus"],
        choices=["secagg", "flower-secaggplus", "plain"],
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep run folders and logs")
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be >= 2 (round 1 is the warm-up)")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    work = Path(tempfile.mkdtemp(prefix="ssl-fed-deployround-"))
    data = write_site_data(overrides("secagg", args.rounds), work / "data")
    rows, ratio_rows = list(TABLE_HEAD), list(RATIO_HEAD)
    stage_rows: list[str] = []
    timeline_rows: list[str] = []
    ratios: dict[str, float] = {}
    try:
        for aggregation in args.aggregation:
            res: dict[str, list[Run]] = {"sim": [], "deploy": []}
            loads: dict[str, list[str]] = {"sim": [], "deploy": []}
            sites: list[str] = []
            try:
                for rep in range(args.repeats):
                    base = work / aggregation / str(rep)
                    before = os.getloadavg()[0]
                    res["sim"].append(simulate(aggregation, args.rounds, base / "sim"))
                    loads["sim"].append(f"{before:.1f}->{os.getloadavg()[0]:.1f}")
                    before = os.getloadavg()[0]
                    res["deploy"].append(
                        deploy(aggregation, args.rounds, base / "deploy", data, sites)
                    )
                    loads["deploy"].append(f"{before:.1f}->{os.getloadavg()[0]:.1f}")
            except (RuntimeError, subprocess.TimeoutExpired, TimeoutError) as err:
                print(f"{aggregation}: FAILED: {err}", flush=True)
                ratio_rows.append(f"| {aggregation} | failed: {str(err).splitlines()[0]} | | |")
                continue
            side_rows, ratio, ratios[aggregation] = aggregation_rows(aggregation, res, loads)
            for row in side_rows:
                print(row, flush=True)
                rows.append(row)
            print(ratio, flush=True)
            ratio_rows.append(ratio)
            phase = site_phases(sites, skip_first=1)  # each site's first message: run start-up
            timeline_rows.append(timeline_row(aggregation, phase))
            print(timeline_rows[-1], flush=True)
            stage_rows += stage_table_rows(aggregation, res)
        import_s = clientapp_import_s()
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    body = render(
        args, overrides("<aggregation>", args.rounds), rows, ratio_rows, stage_rows,
        timeline_rows, ratios, import_s,
    )  # fmt: skip
    if args.record:
        update_section("deploy_round", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
