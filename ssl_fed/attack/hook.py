"""The poisoning suite's one hook: a malicious simulated site replaces its update before masking.

``sim.attack=[{site: 2, kind: lie}, ...]`` (:mod:`ssl_fed.attack`) makes the listed sites
malicious. The ClientApp calls :func:`submitted_update` with the delta a site just trained, right
before it is handed to aggregation (the guard, then SecAgg's mod, which quantizes and masks it):
a malicious site controls its own input, so it submits the attack's output instead. Honest sites
pass through unchanged. Simulation only: a deployed site never calls this.

Every site of an attacked simulation records ``(honest, submitted)`` for each round under
``<out>/attack/round_<r>/site_<s>.npz``: the malicious sites read their colluders' honest deltas
from there, and the benchmark (benchmarks/poisoning.py) replays rounds from it.

Notes
-----
What the colluders know (:attr:`ssl_fed.attack.AttackerView.known`): the site's own honest delta
of this round plus the other colluders' honest deltas of the previous round (the rounds run one
after another, so that file is complete and the view deterministic; the current round's sites
train concurrently, so their files may not exist yet). In round 1 a colluder knows only its own
delta, and LIE/min-max then submit it unchanged (``σ = 0``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssl_fed.attack import AttackerView, apply_attack, flatten, parse_attacks, unflatten
from ssl_fed.config import RootConfig
from ssl_fed.fed.secagg import expected_sites

ATTACK_DIR = "attack"


def record_path(out: str | Path, rnd: int, site: int) -> Path:
    """Where site ``site`` records its honest and submitted delta of round ``rnd``."""
    return Path(out) / ATTACK_DIR / f"round_{rnd}" / f"site_{site}.npz"


def load_record(out: str | Path, rnd: int, site: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Return ``(honest, submitted)`` (flat float64) of ``site`` in round ``rnd``."""
    with np.load(record_path(out, rnd, site)) as f:
        return np.asarray(f["honest"]), np.asarray(f["submitted"])


def submitted_update(
    cfg: RootConfig, site: int, delta: list[NDArray[Any]], rnd: int
) -> list[NDArray[Any]]:
    """Return the delta site ``site`` submits in round ``rnd`` (``delta`` unless malicious)."""
    if not cfg.sim.attack:
        return delta
    specs = {s.site: s for s in parse_attacks(list(cfg.sim.attack), cfg.sim.num_sites)}
    own = flatten(delta)
    spec = specs.get(site)
    submitted = own
    if spec is not None:
        known = [own] + [
            load_record(cfg.out, rnd - 1, other)[0]
            for other in sorted(specs)
            if other != site and record_path(cfg.out, rnd - 1, other).is_file()
        ]
        view = AttackerView(
            own,
            known,
            rnd,
            num_sites=expected_sites(cfg),
            num_attackers=len(specs),
            seed=cfg.sim.seed * 1009 + site,
        )
        submitted = apply_attack(spec, view)
    path = record_path(cfg.out, rnd, site)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, honest=own, submitted=submitted)
    return unflatten(submitted, delta) if spec is not None else delta
