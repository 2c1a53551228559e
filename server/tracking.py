"""Run directory of a federation: TensorBoard, checkpoints, metrics.json, resolved config.

Layout under ``out``: ``tb/`` (TensorBoard event files), ``checkpoints/last.pt`` (global
federated arrays, round, run id, history, config; rewritten atomically after every round),
``metrics.json`` and ``config.yaml``. Per-site ε always comes from the sites' own ledgers: in a
simulation the server can read ``<out>/sites/site_<id>/privacy_ledger.jsonl`` (the same files the
sites charge); otherwise it uses the ε each site reported as a whitelisted scalar.

A round that secure aggregation skips (too few survivors) keeps the model unchanged; its history
entry carries ``skipped`` (the reason, else ``null``) and TensorBoard's ``secagg/skipped_rounds``
counts the skipped rounds so far (continued across a resume).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from server.strategy import RoundRecord
from ssl_fed.config import RootConfig, epsilon_budget
from ssl_fed.data import load_splits
from ssl_fed.eval import evaluate_encoder
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.secagg import quantization_bound, secure_label
from ssl_fed.models import build_model
from ssl_fed.privacy.ledger import LEDGER_FILE, PrivacyLedger
from ssl_fed.train.job import write_atomic

log = logging.getLogger("ssl_fed.server")
CHECKPOINT = "checkpoints/last.pt"


def load_checkpoint(out: str | Path) -> dict[str, Any] | None:
    """Return the last checkpoint of the run in ``out``, or ``None``."""
    path = Path(out) / CHECKPOINT
    return torch.load(path, weights_only=False) if path.is_file() else None


class RunTracker:
    """Logs, evaluates and checkpoints a federation round by round."""

    def __init__(self, cfg: RootConfig, run_id: str, history: list[dict[str, Any]]) -> None:
        self.cfg, self.run_id, self.history = cfg, run_id, history
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        self.writer = SummaryWriter(str(self.out / "tb"))
        self.splits = load_splits(cfg.data)
        self.model = build_model(cfg.encoder, self.splits.train.channels)
        self.started = time.time()
        self.report: dict[str, Any] = {}
        self.last_eval_round = 0
        self.epsilon_reported: dict[int, float] = {}
        self.init_info: dict[str, Any] = {"kind": "random"}
        log.info(
            "TensorBoard logs: %s  (open: tensorboard --logdir %s)",
            self.out / "tb",
            self.out / "tb",
        )

    def site_epsilons(self) -> dict[int, float]:
        """ε per site from the ledger files when the server can see them, else as reported."""
        sites = sorted((self.out / "sites").glob(f"site_*/{LEDGER_FILE}"))
        if not sites or not self.cfg.privacy.enabled:
            return dict(self.epsilon_reported)
        pr = self.cfg.privacy
        return {
            int(p.parent.name.split("_")[1]): PrivacyLedger(
                p.parent, budget=epsilon_budget(pr), delta=pr.delta, accountant=pr.accountant
            ).epsilon()
            for p in sites
        }

    def evaluate(self, arrays: list[fa.NDArray]) -> dict[str, Any]:
        """Linear probe and kNN of the global encoder on the held-out split."""
        fa.load_arrays(self.model, arrays, self.cfg.aggregation.share_heads)
        if self.splits.test is None:
            raise ValueError("server-side evaluation needs a labelled held-out split")
        return evaluate_encoder(
            self.model.encoder, self.splits.train, self.splits.test, self.cfg.eval
        ).to_dict()

    def end_round(self, rec: RoundRecord, arrays: list[fa.NDArray]) -> None:
        """Log the round to TensorBoard, evaluate when due, checkpoint, rewrite metrics.json."""
        w, r = self.writer, rec.round
        wall = time.time() - rec.started
        self.epsilon_reported |= rec.epsilon
        eps = self.site_epsilons()
        for name, value in rec.losses.items():
            w.add_scalar(f"loss/{name}", value, r)
        for site, value in eps.items():
            w.add_scalar(f"privacy/epsilon/site_{site}", value, r)
        if eps:
            w.add_scalar("privacy/epsilon/max", max(eps.values()), r)
            w.add_scalar("privacy/epsilon/mean", float(np.mean(list(eps.values()))), r)
        for key in ("completed", "dropped", "declined"):
            w.add_scalar(f"sites/{key}", len(getattr(rec, key)), r)
        w.add_scalar("time/round_s", wall, r)
        if "round" in rec.timings:
            w.add_scalar("time/secagg_round_s", rec.timings["round"], r)
        skips = sum(1 for h in self.history if h.get("skipped")) + int(rec.skipped is not None)
        w.add_scalar("secagg/skipped_rounds", skips, r)
        if r % self.cfg.eval.every == 0 or r == self.cfg.sim.rounds:
            self.report = self.evaluate(arrays)
            self.last_eval_round = r
            for k, v in self.report["linear_probe"].items():
                w.add_scalar(f"probe/linear_{k}", v, r)
            w.add_scalar("probe/knn", self.report["knn_accuracy"], r)
        w.flush()
        entry = {k: v for k, v in asdict(rec).items() if k not in ("started", "epsilon")}
        entry |= {"epsilon_max": max(eps.values(), default=0.0), "wall_time_s": wall}
        self.history.append(entry)
        self.save_checkpoint(r, arrays)
        self.write_metrics(r)
        log.info(
            "round %d done in %.1fs: losses %s, ε_max %.3f",
            r,
            wall,
            rec.losses,
            entry["epsilon_max"],
        )

    def save_checkpoint(self, round: int, arrays: list[fa.NDArray]) -> None:
        """Atomically replace the last checkpoint (global arrays, round, run id, config)."""
        path = self.out / CHECKPOINT
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "round": round,
            "run_id": self.run_id,
            "arrays": arrays,
            "names": [s.name for s in fa.array_specs(self.model, self.cfg.aggregation.share_heads)],
            "history": self.history,
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def write_metrics(self, rounds_completed: int) -> dict[str, Any]:
        """Write ``metrics.json`` (see simulations/README.md for the keys)."""
        eps = self.site_epsilons()
        metrics = {
            "run_id": self.run_id,
            "rounds_completed": rounds_completed,
            "secure_aggregation": secure_label(self.cfg.aggregation),
            "quantization_bound": quantization_bound(self.cfg),
            "skipped_rounds": sum(1 for h in self.history if h.get("skipped")),
            "epsilon_per_site": {str(k): v for k, v in sorted(eps.items())},
            "epsilon_max": max(eps.values(), default=0.0),
            "delta": self.cfg.privacy.delta if self.cfg.privacy.enabled else None,
            "init": self.init_info,
            "linear_probe": self.report.get("linear_probe"),
            "knn_accuracy": self.report.get("knn_accuracy"),
            "linear_probe_std": self.report.get("linear_probe_std"),
            "ece": self.report.get("ece"),
            "per_class_accuracy": self.report.get("per_class_accuracy"),
            "evaluated_round": self.last_eval_round,
            "history": self.history,
            "wall_time_s": time.time() - self.started,
            "tensorboard": str(self.out / "tb"),
        }
        write_atomic(self.out / "metrics.json", json.dumps(metrics, indent=2).encode())
        return metrics

    def close(self) -> None:
        """Flush and close TensorBoard."""
        self.writer.close()
        print(
            f"TensorBoard logs: {self.out / 'tb'}  (open: tensorboard --logdir {self.out / 'tb'})"
        )
