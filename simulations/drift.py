"""Monitor-level drift simulation: sites, an injected drift, each site's monitor, the alarms.

``python -m simulations.drift OUT_DIR [--release dp-alarm] [--mechanism svt] [OVERRIDES...]``

Each of ``sim.num_sites`` sites holds its own part of the data (digits by default, split IID with
``sim.seed``). A site's images arrive as a stream: every round it sees a fresh window of
``--window`` images drawn from its own part, each shifted by up to one pixel and lightly noised
(new handwriting of the same digits). The public encoder (``init=`` a warm start, else a random
initialization from the public ``sim.seed``) maps windows to features; the site builds its sketch
from a reference window of ``--reference`` images and runs :class:`ssl_fed.monitor.DriftMonitor`
every round for ``sim.rounds`` rounds; ``sim.drift`` injects drift from a round on
(:mod:`ssl_fed.monitor.inject`). ``sim.on_drift=alert``: an alarm is logged and reported; the
server does not change the training schedule.

No federated training runs: the monitor sees the global encoder of one round, which is what a
monitor needs (its statistic is computed in the encoder's feature space at the site). ε charges
go to a real ledger per site under ``OUT_DIR/sites/``. The noise of the releases is seeded from
``sim.seed`` for reproducibility: a simulation, not a deployment.

Writes ``OUT_DIR/drift.jsonl`` (one line per site and round: the site-local statistic and alert,
the released bit, ε), ``OUT_DIR/drift_summary.json`` and TensorBoard ``OUT_DIR/tb`` (the
server's view: ``drift/alarm/site_<k>``, ``drift/alarms``); read them with ``ssl-fed monitor``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget, load_config
from ssl_fed.data import DataError, load_splits
from ssl_fed.eval.report import extract_features
from ssl_fed.models.heads import build_model
from ssl_fed.monitor import DriftMonitor, FeatureMap, build_sketch
from ssl_fed.monitor.inject import DriftSpec, active_drift, apply_drift, parse_drift
from ssl_fed.monitor.report import DRIFT_LOG, drift_scalars, summarize
from ssl_fed.privacy.ledger import PrivacyLedger


@dataclass(frozen=True)
class MonitorSettings:
    """The site-side monitor's public constants (one set for every site)."""

    window: int = 1000
    reference: int = 1000
    alpha: float = 0.01
    release: str = "dp-alarm"
    mechanism: str = "svt"
    epsilon: float = 0.5
    num_features: int = 256
    bandwidth: float = 0.5


def site_pools(cfg: RootConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split the labelled training images IID over the sites (``sim.seed``)."""
    train = load_splits(cfg.data).train
    if train.labels is None:
        raise ValueError("the drift simulation needs labelled data (class_prior drift)")
    g = torch.Generator().manual_seed(cfg.sim.seed)
    order = torch.randperm(len(train), generator=g)
    parts = torch.chunk(order, cfg.sim.num_sites)
    return [(train.images[p], train.labels[p]) for p in parts]


def jitter(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Return new samples of the same images: shift by up to one pixel, add N(0, 0.05) noise."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    offset = torch.randint(0, 9, (n,), generator=g)
    out = torch.empty_like(images)
    for k in range(9):
        rows = offset == k
        dy, dx = divmod(k, 3)
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    noise = torch.randn(out.shape, generator=g) * 0.05
    return (out + noise).clamp(0.0, 1.0)


def draw_window(
    pool: tuple[torch.Tensor, torch.Tensor], n: int, spec: DriftSpec | None, g: torch.Generator
) -> torch.Tensor:
    """One round's fresh window of ``n`` images at a site, drifted by ``spec`` if any."""
    images, labels = pool
    if spec is None:
        window = images[torch.randint(images.shape[0], (n,), generator=g)]
    else:
        window = apply_drift(spec, images, labels, n, g)
    return jitter(window, g)


def simulate_drift(cfg: RootConfig, out_dir: Path, ms: MonitorSettings) -> dict[str, Any]:
    """Run the monitor of every site for ``sim.rounds`` rounds; write the log and summary."""
    specs = parse_drift(cfg.sim.drift, cfg.sim.num_sites, cfg.sim.rounds)
    pools = site_pools(cfg)
    torch.manual_seed(cfg.sim.seed)
    model = build_model(cfg.encoder, pools[0][0].shape[1])
    if cfg.init is not None:
        from ssl_fed.train.job import load_init

        load_init(model, cfg.init)
    encoder = model.encoder
    fmap = FeatureMap(encoder.feature_dim, ms.num_features, ms.bandwidth, seed=cfg.sim.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (out_dir / DRIFT_LOG).open("w", encoding="utf-8")
    monitors, ledgers, gens = [], [], []
    for site, pool in enumerate(pools):
        g = torch.Generator().manual_seed(cfg.sim.seed * 1000 + site)
        ref = extract_features(encoder, draw_window(pool, ms.reference, None, g))
        sketch = build_sketch(fmap, ref, window=ms.window, alpha=ms.alpha, seed=site)
        ledger = PrivacyLedger(
            out_dir / "sites" / f"site_{site}", budget=epsilon_budget(cfg.privacy), delta=1e-5
        )
        monitors.append(_monitor(sketch, ms, ledger, np.random.default_rng([cfg.sim.seed, site])))
        ledgers.append(ledger)
        gens.append(g)
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tb"))
    for rnd in range(1, cfg.sim.rounds + 1):
        released: dict[int, int] = {}
        for site, pool in enumerate(pools):
            spec = active_drift(specs, site, rnd)
            feats = extract_features(encoder, draw_window(pool, ms.window, spec, gens[site]))
            reading = monitors[site].observe(rnd, feats)
            line = reading.to_dict() | {
                "site": site,
                "drift": None if spec is None else spec.kind,
                "strength": None if spec is None else spec.strength,
                "epsilon_total": sum(r.epsilon for r in ledgers[site].releases),
            }
            log.write(json.dumps(line) + "\n")
            alarm = reading.released if reading.released is not None else reading.local_alarm
            released[site] = int(alarm)
        for tag, value in drift_scalars(released).items():
            writer.add_scalar(tag, value, rnd)
    writer.close()
    log.close()
    latched = ms.release == "dp-alarm" and ms.mechanism == "svt"
    records = [json.loads(x) for x in (out_dir / DRIFT_LOG).read_text().splitlines()]
    summary = summarize(records, latched) | {
        "release": ms.release,
        "mechanism": ms.mechanism,
        "latched": latched,
        "settings": ms.__dict__,
        "drift": [s.__dict__ for s in specs],
    }
    (out_dir / "drift_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _monitor(
    sketch: Any, ms: MonitorSettings, ledger: PrivacyLedger, rng: np.random.Generator
) -> DriftMonitor:
    calls = {"n": 0}

    def charge(epsilon: float, mechanism: str) -> None:
        calls["n"] += 1
        ledger.charge_release(
            run_id="drift-sim", round=calls["n"], epsilon=epsilon, mechanism=mechanism
        )

    return DriftMonitor(
        sketch,
        release=ms.release,
        mechanism=ms.mechanism,
        epsilon=ms.epsilon,
        charge=charge if ms.release == "dp-alarm" else None,
        rng=rng,
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: OUT_DIR, monitor flags, then config overrides (``sim.drift=...``)."""
    p = argparse.ArgumentParser(prog="python -m simulations.drift", description=__doc__)
    p.add_argument("out_dir")
    defaults = MonitorSettings()
    for name, value in defaults.__dict__.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # small convolutions; threads only contend on a shared machine
    ms = MonitorSettings(**{k: getattr(args, k) for k in defaults.__dict__})
    out_dir = Path(args.out_dir)
    if (out_dir / DRIFT_LOG).exists():
        print(f"error: {out_dir / DRIFT_LOG} exists; choose a new OUT_DIR", file=sys.stderr)
        return 2
    try:
        summary = simulate_drift(load_config(list(args.overrides)), out_dir, ms)
    except (ConfigError, DataError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(
        json.dumps({k: summary[k] for k in ("false_alarm_rate", "detection_delay", "epsilon_max")})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
