"""Person-level privacy: ε per person under ``unit=image`` (group privacy) vs ``unit=person``.

Setting: one site holding sklearn digits' 1257 training images (``train-local``, the shipped
joint task and defaults, δ = 1e-5), cut into *synthetic* persons of m ∈ {1, 5, 20} images each
(``data.synthetic_persons=m``: a fixed random set of m images per person; not real people).

1. Same noise. ``unit=image`` at the σ calibrated for ε = 8 per image (128 images per batch):
   what it guarantees to a *person* with m images is only the group-privacy bound. We use the
   standard (ε, δ) bound for groups of size k: an (ε', δ')-DP mechanism is
   (kε', k·e^((k-1)ε')·δ')-DP for datasets differing in k records (Dwork & Roth, "The
   Algorithmic Foundations of Differential Privacy", 2014, §2.3; Vadhan, "The Complexity of
   Differential Privacy", 2017, Lemma 2.2), minimised over δ' such that k·e^((k-1)ε')·δ' ≤ δ,
   with ε'(δ') from the RDP of the run's subsampled Gaussian (Mironov, arXiv 1702.07530;
   Opacus' RDP analysis called directly here, not through the ledger). ``unit=person`` at the
   same σ, m images cap, 128/m persons per batch (about the same images per step): its ε per
   person is what its own ledger records.
2. Equal per-person ε = 8. ``unit=image`` with σ raised until the group bound for m is ≤ 8,
   against ``unit=person`` calibrated to ε = 8 per person. Utility: linear probe (5 labels per
   class and all labels) and 5-NN on the held-out 30 %, frozen encoder.

Usage: python benchmarks/person_unit.py [--out outputs/bench-person]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from benchmarks.record import machine, update_section
from ssl_fed.config import load_config
from ssl_fed.train.job import run_train_local

N_TRAIN, BATCH, EPOCHS, DELTA = 1257, 128, 2, 1e-5
SIZES = (1, 5, 20)
NO_CAP = ["privacy.target_epsilon=1e9", "privacy.epsilon_budget=1e9"]
"""Fixed-σ rows: σ is given, so the ε budget is not what limits them (ε is still recorded)."""
ORDERS = list(RDPAccountant.DEFAULT_ALPHAS)
WIDE = ORDERS + [float(a) for a in range(72, 4097, 8)]


def rdp_of(sigma: float, orders: list[float]) -> np.ndarray:
    """RDP of the unit=image schedule (q = 128/1257, 2 epochs) at ``orders``."""
    q, steps = BATCH / N_TRAIN, EPOCHS * math.ceil(N_TRAIN / BATCH)
    return np.asarray(compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders))


def spent(orders: list[float], rdp: np.ndarray, delta: float) -> float:
    """ε at ``delta`` from an RDP curve (Opacus' conversion)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0])


def group_epsilon(sigma: float, k: int) -> float:
    """ε per person of k images under unit=image: the better of two group-privacy bounds.

    (a) (ε, δ): min over δ' of kε'(δ') subject to k·e^((k-1)ε')·δ' ≤ δ. (b) RDP (Mironov,
    arXiv 1702.07530, Prop. 2): (α, ρ)-RDP gives (α/2^c, 3^c·ρ)-RDP for groups of 2^c ≥ k.
    """
    if k == 1:
        return spent(ORDERS, rdp_of(sigma, ORDERS), DELTA)
    rdp = rdp_of(sigma, WIDE)
    best = math.inf
    for log_d in np.linspace(math.log(DELTA) - 400, math.log(DELTA / k), 200):
        eps = spent(WIDE, rdp, math.exp(log_d))
        if math.log(k) + (k - 1) * eps + log_d <= math.log(DELTA):
            best = min(best, k * eps)
    c = math.ceil(math.log2(k))
    keep = [i for i, a in enumerate(WIDE) if a / 2**c > 1]
    scaled = [WIDE[i] / 2**c for i in keep]
    return min(best, spent(scaled, 3**c * rdp[keep], DELTA))


def sigma_for_group(target: float, k: int) -> float:
    """Smallest σ (bisection, 2 %) whose group bound for k images is ≤ ``target``."""
    low, high = 0.3, 400.0
    while high / low > 1.02:
        mid = math.sqrt(low * high)
        low, high = (mid, high) if group_epsilon(mid, k) > target else (low, mid)
    return high


def train(name: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """One train-local run on digits (reused when its metrics.json exists): ε, σ, probe, kNN."""
    start = time.time()
    run = out / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    common = ["train.progress=false", "eval.draws=2", "eval.labels_per_class=[5,-1]"]
    if (run / "metrics.json").exists():
        m = json.loads((run / "metrics.json").read_text())
    else:
        m = run_train_local(load_config([*common, *overrides, "overwrite=true", f"out={run}"]))
    probe = m["linear_probe"]
    return {
        "row": name,
        "epsilon": m["epsilon"],
        "sigma": m["noise_multiplier"],
        "probe5": probe["5"],
        "probe_all": probe["all"],
        "knn": m["knn_accuracy"],
        "seconds": round(time.time() - start, 1) if "wall_time_s" not in m else m["wall_time_s"],
    }


def person_args(m: int) -> list[str]:
    persons = math.ceil(N_TRAIN / m)
    return [
        "privacy.unit=person",
        f"data.synthetic_persons={m}",
        f"privacy.max_images_per_person={m}",
        f"train.batch_size={max(1, round(BATCH / m))}",
        f"data.public_size={persons}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench-person")
    out = Path(parser.parse_args().out)
    started = time.time()
    image = [f"data.public_size={N_TRAIN}", f"train.batch_size={BATCH}"]
    base = train("image ε=8", out, image)
    sigma = float(base["sigma"])
    persons = {m: train(f"person ε=8, m={m}", out, person_args(m)) for m in SIZES}
    same = [(1, group_epsilon(sigma, 1), persons[1])]
    for m in SIZES[1:]:
        fixed = [*person_args(m), f"privacy.noise_multiplier={sigma}", *NO_CAP]
        same.append((m, group_epsilon(sigma, m), train(f"person m={m}, same σ", out, fixed)))
    equal = [(1, sigma, group_epsilon(sigma, 1), base, persons[1])]
    for m in SIZES[1:]:
        s = sigma_for_group(8.0, m)
        fixed = [*image, f"privacy.noise_multiplier={s}", *NO_CAP]
        img = train(f"image, group bound 8, m={m}", out, fixed)
        equal.append((m, s, group_epsilon(s, m), img, persons[m]))
    result = {"base": base, "same": same, "equal": equal}
    (out / "person_unit.json").write_text(json.dumps(result, indent=2, default=str))
    record(base, same, equal, time.time() - started)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def record(base: dict[str, Any], same: list[Any], equal: list[Any], seconds: float) -> None:
    lines = [
        "## Person-level privacy (`python benchmarks/person_unit.py`)",
        "",
        f"Machine: {machine()}; 2 cores shared with 5 other jobs, so times are indicative. "
        f"Total {seconds / 60:.1f} min. digits, one site, 1257 training images, joint task, "
        "2 local epochs, δ = 1e-5; synthetic persons of m images (benchmark device, not real "
        "people). Group bound: (kε', k·e^((k-1)ε')δ') (Dwork & Roth 2014 §2.3; Vadhan 2017 "
        "Lemma 2.2) minimised over δ', ε' from Opacus' RDP analysis. Probe: 5 labels per class "
        "(mean of 2 draws) / all labels, and 5-NN, % on the held-out 30 %.",
        "",
        f"Same noise σ = {base['sigma']:.3f} (unit=image calibrated to ε = 8 per image, "
        f"128 images per batch; probe 5/all {pct(base['probe5'])}/{pct(base['probe_all'])}, "
        f"kNN {pct(base['knn'])}):",
        "",
        "| m | ε per person, unit=image (group bound) | ε per person, unit=person | "
        "unit=person probe 5 / all | kNN |",
        "|---|---|---|---|---|",
    ]
    for m, group, person in same:
        lines.append(
            f"| {m} | {group:.2f} | {person['epsilon']:.2f} | {pct(person['probe5'])} / "
            f"{pct(person['probe_all'])} | {pct(person['knn'])} |"
        )
    lines += [
        "",
        "Equal ε = 8 per person:",
        "",
        "| m | unit=image σ (group bound) | probe 5 / all | kNN | unit=person σ | probe 5 / all "
        "| kNN |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, s, bound, img, per in equal:
        lines.append(
            f"| {m} | {s:.2f} ({bound:.2f}) | {pct(img['probe5'])} / {pct(img['probe_all'])} | "
            f"{pct(img['knn'])} | {per['sigma']:.2f} | {pct(per['probe5'])} / "
            f"{pct(per['probe_all'])} | {pct(per['knn'])} |"
        )
    update_section("person_unit", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
