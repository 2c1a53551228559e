"""Local vs distributed DP noise under SecAgg: aggregate noise, probe accuracy, round time.

Protocol: digits (stratified 70/30 split, seed 0), 10 sites, Dirichlet α = 0.5, the synthetic
warm start, the joint task (group-wise clipping, sensitivity 2C, C = 1), δ = 1e-5. Both modes
run the *same* DP-FedSGD (:mod:`ssl_fed.train.fedsgd_federation`): every round each site draws a
Poisson sample at the public rate q and sends its clipped unit-gradient sum; the server applies
one Adam step with the sum over the expected total batch. ``local``: each site adds all of its
Gaussian noise (σ calibrated by Opacus RDP for ε per site). ``distributed``: each site rounds its
units, adds a Skellam share of variance σ²/m (m = min_noisy_sites, default SecAgg's minimum
survivors, 5 of 10), ssl-fed's SecAgg+ sums the shares modulo 2^b in-process, the server decodes
(σ calibrated by the Skellam RDP accountant). Per ε ∈ {1, 3, 8}: the measured std of the noise
in the released sum (one zero-gradient round through the real encode/SecAgg/decode path; also
at m = K, where the ratio should be about √K), and the linear probe at 1/5/10/all labels per
class (mean over 5 label draws). Finally the SecAgg round time at several word sizes.

``--quick`` (what a shared 2-core machine allows): block 3 + heads trainable, q = 0.05, 15
rounds. The full profile (all parameters, q = 0.05, 100 rounds) and the hospital-scale data set
are not run here; see RESULTS.md for the command and why. The same comparison through the real
Flower simulation (``ssl-fed simulate``, both modes as they run in production) is
``benchmarks/distributed_dp_simulate.py``; this script stays in-process because it measures the
noise on zero-gradient rounds and varies m, which the simulation does not expose.

Usage: python benchmarks/distributed_dp.py [--quick] [--init DIR] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from benchmarks.record import machine, update_section
from ssl_fed.config import load_config
from ssl_fed.data import load_splits, partition_dataset
from ssl_fed.eval import evaluate_encoder
from ssl_fed.models import build_model
from ssl_fed.tasks import build_task
from ssl_fed.tasks.units import plan_units
from ssl_fed.train.fedsgd import expected_total_batch, local_noisy_sum, trainable_dim
from ssl_fed.train.fedsgd_federation import Federation, plan_noise, secure_noisy_sum
from ssl_fed.train.job import load_init
from ssl_fed.train.local import apply_trainable
from ssl_fed.train.server_opt import ServerOptimizer

PROFILES = {
    "quick": {"rounds": 15, "q": 0.05, "trainable": ["encoder.block3", "rotation", "projection"]},
    "full": {"rounds": 100, "q": 0.05, "trainable": []},
}
SITES, DELTA, CLIP, LR, BITS = 10, 1e-5, 1.0, 1e-3, 32
EVAL = ["eval.labels_per_class=[1,5,10,-1]", "eval.draws=5"]


def build(cfg: Any, splits: Any, init: str, trainable: list[str]) -> Any:
    """A fresh task on the warm start, with only ``trainable`` parameters trained."""
    channels = splits.train.images.shape[1]
    model = build_model(cfg.encoder, channels)
    load_init(model, init)
    task = build_task(model, cfg.task, cfg.data.augment, cfg.data.image_size, channels)
    apply_trainable(task, trainable)
    return task


def measured_std(noise: Any, dim: int) -> float:
    """Std of the released sum of one round with zero gradients (noise only), real path."""
    zero = {i: np.zeros((0, dim)) for i in range(SITES)}
    if noise.mode == "local":
        kw = {"noise_multiplier": noise.noise_multiplier, "clip": CLIP}
        total = np.sum([local_noisy_sum(z, sensitivity=2.0, **kw) for z in zero.values()], axis=0)
    else:
        total, why = secure_noisy_sum(zero, noise, seed=12345)
        assert total is not None, why
    return float(np.std(total))


def probe(task: Any, splits: Any, cfg: Any) -> dict[str, float]:
    report = evaluate_encoder(task.model.encoder, splits.train, splits.test, cfg.eval).to_dict()
    return {k: round(100 * v, 1) for k, v in report["linear_probe"].items()}


def round_times(dim: int, max_units: int) -> list[tuple[int, int, float]]:
    """Seconds of one in-process SecAgg+ round (10 sites, zero gradients) per word size."""
    out = []
    for bits in (24, 32, 48):
        noise = plan_noise(
            "distributed", target_epsilon=8.0, delta=DELTA, sample_rate=0.05, rounds=15,
            sensitivity=2.0, clip=CLIP, dim=dim, bits=bits, num_sites=SITES,
            min_noisy_sites=5, max_units=max_units,
        )  # fmt: skip
        zero = {i: np.zeros((0, dim)) for i in range(SITES)}
        t0 = time.perf_counter()
        secure_noisy_sum(zero, noise, seed=1)
        assert noise.ddp is not None
        out.append((bits, 16 if bits <= 16 else 32 if bits <= 32 else 64, time.perf_counter() - t0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--init", default="outputs/warm-start", help="synthetic warm start dir")
    parser.add_argument("--eps", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--out", default="outputs/bench-ddp")
    parser.add_argument("--rounds", type=int, help="override the profile's rounds")
    parser.add_argument("--lr", type=float, default=LR, help="server Adam learning rate")
    parser.add_argument("--from-json", help="only render a saved result into RESULTS.md")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        update_section(section(saved), render(saved))
        return
    prof = dict(PROFILES["quick" if args.quick else "full"])
    if args.rounds:
        prof["rounds"] = args.rounds
    prof["lr"] = args.lr
    cfg = load_config(EVAL)  # the modes below are planned in-process (plan_noise), not by config
    splits = load_splits(cfg.data)
    sites = partition_dataset(splits.train, cfg.partition, SITES)
    sizes = [len(s) for s in sites]
    started = time.time()
    task = build(cfg, splits, args.init, prof["trainable"])
    dim = trainable_dim(task)
    rows: list[dict[str, Any]] = [{"row": "warm start alone", "probe": probe(task, splits, cfg)}]
    print(rows[-1], flush=True)
    noise_rows = []
    for eps in args.eps:
        common = dict(
            target_epsilon=eps, delta=DELTA, sample_rate=prof["q"], rounds=prof["rounds"],
            sensitivity=2.0, clip=CLIP, dim=dim, bits=BITS, num_sites=SITES,
            max_units=len(splits.train),
        )  # fmt: skip
        plans = {
            "local": plan_noise("local", min_noisy_sites=5, **common),
            "distributed": plan_noise("distributed", min_noisy_sites=5, **common),
            "distributed m=K": plan_noise("distributed", min_noisy_sites=SITES, **common),
        }
        stds = {m: measured_std(p, dim) for m, p in plans.items()}
        noise_rows.append(
            {
                "eps": eps,
                "std": stds,
                "sigma": {m: p.noise_multiplier for m, p in plans.items()},
                "eps_achieved": {m: p.epsilon for m, p in plans.items()},
                "ddp": _ddp_terms(plans["distributed"]),
            }
        )
        print(noise_rows[-1], flush=True)
        for mode in ("local", "distributed"):
            t0 = time.time()
            task = build(cfg, splits, args.init, prof["trainable"])
            opt = ServerOptimizer(task, "adam", args.lr, expected_total_batch(prof["q"], sizes))
            units = plan_units(task, cfg.task, max(1, round(prof["q"] * max(sizes))))
            fed = Federation(task, sites, units, prof["q"], plans[mode], opt)
            skipped = [r for r in range(prof["rounds"]) if fed.run_round(r)["skipped"]]
            row = {
                "row": f"{mode} ε={eps:g}",
                "probe": probe(task, splits, cfg),
                "seconds": round(time.time() - t0, 1),
                "skipped": len(skipped),
            }
            rows.append(row)
            print(row, flush=True)
    times = round_times(dim, len(splits.train))
    result = {
        "profile": "quick" if args.quick else "full",
        "prof": prof,
        "dim": dim,
        "rows": rows,
        "noise": noise_rows,
        "round_times": times,
        "seconds": round(time.time() - started, 1),
        "load": os.getloadavg(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{section(result)}.json").write_text(json.dumps(result, indent=2))
    if args.record:
        update_section(section(result), render(result))


def section(r: dict[str, Any]) -> str:
    """RESULTS.md section name: one per profile and round count."""
    lr = r["prof"].get("lr", LR)
    return f"distributed_dp_{r['profile']}_{r['prof']['rounds']}" + (
        "" if lr == LR else f"_lr{lr:g}"
    )


def _ddp_terms(plan: Any) -> dict[str, float]:
    p = plan.ddp
    return {
        "bits": p.bits,
        "gamma": p.gamma,
        "inflation": p.inflation,
        "wrap_margin_sd": p.wrap_margin_sd(SITES),
        "k_required": p.k_required,
    }


def render(r: dict[str, Any]) -> str:
    """The RESULTS.md section."""
    load = ", ".join(f"{x:.1f}" for x in r["load"])
    lr = r["prof"].get("lr", LR)
    eps_list = " ".join(f"{n['eps']:g}" for n in r["noise"])
    lines = [
        f"## Distributed vs local DP noise (`python benchmarks/distributed_dp.py "
        f"{'--quick ' if r['profile'] == 'quick' else ''}--rounds {r['prof']['rounds']} "
        f"--lr {lr:g} --eps {eps_list} "
        "--init outputs/warm-start --record`)",
        "",
        f"Machine: {machine()}; load average at the end {load} (shared; times indicative). "
        f"Profile **{r['profile']}** {r['prof']}; trained coordinates d = {r['dim']}; total "
        f"{r['seconds']} s. Digits, 10 sites, Dirichlet α=0.5, warm start, joint task "
        f"(sensitivity 2C, C=1), δ=1e-5, DP-FedSGD with server Adam (lr {lr:g}) in both modes.",
        "",
        "Noise in the released sum (std per coordinate, measured on one zero-gradient round "
        "through the real encode / SecAgg+ / decode path; m = min_noisy_sites):",
        "",
        "| ε per site | σ local | σ distributed | std local | std distributed (m=5) "
        "| ratio | std distributed (m=K) | ratio (m=K) | √K |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in r["noise"]:
        s, g = n["std"], n["sigma"]
        lines.append(
            f"| {n['eps']:g} | {g['local']:.3f} | {g['distributed']:.3f} | {s['local']:.3f} | "
            f"{s['distributed']:.3f} | {s['local'] / s['distributed']:.2f} | "
            f"{s['distributed m=K']:.3f} | {s['local'] / s['distributed m=K']:.2f} | "
            f"{SITES**0.5:.2f} |"
        )
    d = r["noise"][-1]["ddp"]
    lines += [
        "",
        f"Codec (ε={r['noise'][-1]['eps']:g}): {d['bits']} bits, γ = {d['gamma']:.3g}, rounding "
        f"inflation of Δ2 ×{d['inflation']:.6f}, wrap margin {d['wrap_margin_sd']:.1f} sd "
        f"(needed {2 * d['k_required']:.1f}: the accept band 2^(b-2) holds "
        f"{d['k_required']:.1f} sd for a 1e-6 wrap probability over all coordinates).",
        "",
        "Linear probe accuracy in % (mean over 5 label draws; 'all' fitted once):",
        "",
        "| row | k=1 | k=5 | k=10 | all | s | skipped rounds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        p = row["probe"]
        lines.append(
            f"| {row['row']} | {p['1']} | {p['5']} | {p['10']} | {p['all']} | "
            f"{row.get('seconds', '')} | {row.get('skipped', '')} |"
        )
    lines += [
        "",
        "SecAgg+ round (in-process, 10 sites, noise only) by modular bits:",
        "",
        "| bits | word | s |",
        "|---|---|---|",
    ]
    lines += [f"| {b} | uint{w} | {s:.2f} |" for b, w, s in r["round_times"]]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
