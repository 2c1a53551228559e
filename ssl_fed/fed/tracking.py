"""Run directory of a federation: TensorBoard, checkpoints, metrics.json, resolved config.

Layout under ``out``: ``tb/`` (TensorBoard event files), ``checkpoints/last.pt`` (global
federated arrays, round, run id, history, config and the aggregator's server state, e.g. the
distributed mode's Adam moments; rewritten atomically after every round),
``metrics.json`` and ``config.yaml``. Per-site ε always comes from the sites' own ledgers: in a
simulation the server can read ``<out>/sites/site_<id>/privacy_ledger.jsonl`` (the same files the
sites charge); otherwise it uses the ε each site reported as a whitelisted scalar.

A round that secure aggregation skips (too few survivors) keeps the model unchanged; its history
entry carries ``skipped`` (the reason, else ``null``) and TensorBoard's ``secagg/skipped_rounds``
counts the skipped rounds so far (continued across a resume).

Evaluation: what the server probes on (pooled benchmark, the operator's public set, or nothing)
is chosen in :mod:`ssl_fed.fed.server_eval`; ``metrics.json`` ``evaluation``, TensorBoard and
the printed summary say which.

Site-local losses: the losses never leave a site (:mod:`ssl_fed.site`); in a simulation, whose
operator owns every site, the tracker reads each site's ``site_metrics.jsonl`` and logs them
under ``site_local/loss/...``, labelled as such.
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

from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.eval import evaluate_encoder
from ssl_fed.eval.slices import slice_scalars
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators import Aggregator, build_aggregator
from ssl_fed.fed.progress import RoundProgress, emit, summary_table
from ssl_fed.fed.rounds import RoundRecord
from ssl_fed.fed.server_eval import EVALUATIONS, evaluation_kind, load_probe_splits
from ssl_fed.models import build_model
from ssl_fed.monitor.report import drift_scalars
from ssl_fed.privacy.ledger import LEDGER_FILE, PrivacyLedger
from ssl_fed.site.declared import describe_declared
from ssl_fed.tasks.units import unit_label
from ssl_fed.train.job import write_atomic

log = logging.getLogger("ssl_fed.server")
CHECKPOINT = "checkpoints/last.pt"
SITE_METRICS_FILE = "site_metrics.jsonl"
"""The sites' local record of their losses (written by :func:`ssl_fed.site.rounds.record_round`)."""


def load_checkpoint(out: str | Path) -> dict[str, Any] | None:
    """Return the last checkpoint of the run in ``out``, or ``None``."""
    path = Path(out) / CHECKPOINT
    return torch.load(path, weights_only=False) if path.is_file() else None


class RunTracker:
    """Logs, evaluates and checkpoints a federation round by round."""

    def __init__(
        self, cfg: RootConfig, run_id: str, history: list[dict[str, Any]], *, pooled: bool = False
    ) -> None:
        self.cfg, self.run_id, self.history = cfg, run_id, history
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        self.writer = SummaryWriter(str(self.out / "tb"))
        self.evaluation = evaluation_kind(cfg, pooled)
        self.splits = load_probe_splits(cfg, self.evaluation)
        channels = self.splits.train.channels if self.splits else cfg.data.channels
        if channels is None:
            raise ConfigError(
                "data.channels is null, and a deployed server reads no site data to find it: "
                "set data.channels=1 or 3 (the sites' image channels)"
            )
        self.channels: int = channels
        self.model = build_model(cfg.encoder, self.channels)
        self.started = time.time()
        self.report: dict[str, Any] = {}
        self.last_eval_round = 0
        self.epsilon_reported: dict[int, float] = {}
        self.declared: dict[int, dict[str, float]] = {}
        self.init_info: dict[str, Any] = {"kind": "random"}
        self.aggregator: Aggregator = build_aggregator(cfg)
        """The run's aggregator (the server sets its live one): state and bound for the outputs."""
        self.progress = RoundProgress(
            min(cfg.sim.rounds, cfg.sim.halt_after_round or cfg.sim.rounds)
        )
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
                p.parent, accountant=pr.accountant, key_dir=pr.key_dir
            ).epsilon()
            for p in sites
        }

    def evaluate(self, arrays: list[fa.NDArray]) -> dict[str, Any]:
        """Linear probe and kNN of the global encoder on the held-out split."""
        fa.load_arrays(self.model, arrays, self.cfg.aggregation.share_heads)
        if self.splits is None or self.splits.test is None:
            raise ValueError("server-side evaluation needs a labelled held-out split")
        return evaluate_encoder(
            self.model.encoder, self.splits.train, self.splits.test, self.cfg.eval
        ).to_dict()

    def end_round(self, rec: RoundRecord, arrays: list[fa.NDArray]) -> None:
        """Log the round to TensorBoard, evaluate when due, checkpoint, rewrite metrics.json."""
        w, r = self.writer, rec.round
        wall = time.time() - rec.started
        self.epsilon_reported |= rec.epsilon
        self.declared |= rec.declared
        eps = self.site_epsilons()
        if rec.clipped is not None:
            w.add_scalar("secagg/clipped_coordinates", rec.clipped, r)
        person = self.cfg.privacy.unit == "person"
        tag = "privacy/epsilon_per_person" if person else "privacy/epsilon"
        for site, value in eps.items():
            w.add_scalar(f"{tag}/site_{site}", value, r)
        if eps:
            w.add_scalar(f"{tag}/max", max(eps.values()), r)
            w.add_scalar(f"{tag}/mean", float(np.mean(list(eps.values()))), r)
        for key in ("completed", "dropped", "declined"):
            w.add_scalar(f"sites/{key}", len(getattr(rec, key)), r)
        w.add_scalar("time/round_s", wall, r)
        for tag, value in rec.ddp.items():  # distributed noise (aggregators/secagg_distributed)
            w.add_scalar(tag, value, r)
        if "round" in rec.timings:
            w.add_scalar("time/secagg_round_s", rec.timings["round"], r)
        skips = sum(1 for h in self.history if h.get("skipped")) + int(rec.skipped is not None)
        w.add_scalar("secagg/skipped_rounds", skips, r)
        due = r % self.cfg.eval.every == 0 or r == self.cfg.sim.rounds
        if due and self.splits is not None:
            self.report = self.evaluate(arrays)
            self.last_eval_round = r
            prefix = EVALUATIONS[self.evaluation][0]
            for k, v in self.report["linear_probe"].items():
                w.add_scalar(f"{prefix}/linear_{k}", v, r)
            w.add_scalar(f"{prefix}/knn", self.report["knn_accuracy"], r)
            for tag, value in slice_scalars(self.report).items():
                w.add_scalar(f"{prefix}/{tag}", value, r)
        if rec.drift_alarm:  # per-site drift alarms as released (docs/monitoring.md)
            for tag, value in drift_scalars(rec.drift_alarm).items():
                w.add_scalar(tag, value, r)
        site_local = self.site_local_losses(r)
        for name, value in site_local.items():
            w.add_scalar(f"site_local/loss/{name}", value, r)
        w.flush()
        entry = self.history_entry(rec, eps, wall, site_local)
        self.history.append(entry)
        self.save_checkpoint(r, arrays)
        self.write_metrics()
        emit(self.progress.line(entry))

    def history_entry(
        self, rec: RoundRecord, eps: dict[int, float], wall: float, site_local: dict[str, float]
    ) -> dict[str, Any]:
        """Return the round's ``metrics.json`` history entry (site ids only, never Flower node ids).

        ``epsilon_max`` is the largest ε any site has spent so far; ε only grows, so it never
        falls below the previous entry's (a resumed deployed server has not yet heard the
        sites' ε). ``epsilon_max_increase`` is what this round added to it: 0 for a round skipped
        before any site trained, and honestly more when sites trained and the round was skipped
        afterwards (their ledgers charged the training).
        """
        kept = {k: v for k, v in asdict(rec).items() if k not in ("started", "epsilon")}
        entry = {k: v for k, v in kept.items() if k != "declared"}  # in sites_declared
        if site_local:
            entry["site_local_losses"] = site_local
        before = float(self.history[-1].get("epsilon_max", 0.0)) if self.history else 0.0
        now = max(max(eps.values(), default=0.0), before)
        return entry | {
            "epsilon_max": now,
            "epsilon_max_increase": now - before,
            "wall_time_s": wall,
        }

    def site_local_losses(self, round: int) -> dict[str, float]:
        """Mean over sites of the losses each site recorded locally (simulation only).

        Only the simulation's operator, who owns every site, may read these files; a deployed
        server has no access to them and logs nothing here.
        """
        if self.evaluation != "pooled-benchmark":
            return {}
        values: dict[str, list[float]] = {}
        for path in sorted((self.out / "sites").glob(f"site_*/{SITE_METRICS_FILE}")):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if row.get("run_id") == self.run_id and row.get("round") == round:
                    for name, value in row["losses"].items():
                        values.setdefault(name, []).append(float(value))
        return {name: float(np.mean(v)) for name, v in values.items()}

    def save_checkpoint(self, round: int, arrays: list[fa.NDArray]) -> None:
        """Atomically replace the last checkpoint (arrays, round, run id, config, server state)."""
        path = self.out / CHECKPOINT
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "round": round,
            "run_id": self.run_id,
            "arrays": arrays,
            "names": [s.name for s in fa.array_specs(self.model, self.cfg.aggregation.share_heads)],
            "history": self.history,
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
            "server_state": self.aggregator.server_state(),
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def write_metrics(self) -> dict[str, Any]:
        """Write ``metrics.json`` (see simulations/README.md for the keys).

        ``rounds_completed`` counts the rounds that updated the model; ``last_round`` is the
        last round run, skipped or not (the checkpoint's round, where a resume continues).
        """
        eps = self.site_epsilons()
        aggregator = self.aggregator
        history_max = max((float(h.get("epsilon_max", 0.0)) for h in self.history), default=0.0)
        metrics = {
            "run_id": self.run_id,
            "rounds_completed": sum(1 for h in self.history if not h.get("skipped")),
            "last_round": int(self.history[-1]["round"]) if self.history else 0,
            "secure_aggregation": aggregator.label,
            "quantization_bound": aggregator.quantization_bound(),
            "skipped_rounds": sum(1 for h in self.history if h.get("skipped")),
            "epsilon_per_site": {str(k): v for k, v in sorted(eps.items())},
            "sites_declared": {
                str(k): describe_declared(v, self.cfg.data.name)
                for k, v in sorted(self.declared.items())
            },
            "epsilon_max": max(max(eps.values(), default=0.0), history_max),
            "delta": self.cfg.privacy.delta if self.cfg.privacy.enabled else None,
            "privacy_unit": unit_label(asdict(self.cfg.privacy)),
            "init": self.init_info,
            "evaluation": {
                "kind": self.evaluation,
                "label": EVALUATIONS[self.evaluation][1],
                "tensorboard_prefix": EVALUATIONS[self.evaluation][0] or None,
            },
            "linear_probe": self.report.get("linear_probe"),
            "knn_accuracy": self.report.get("knn_accuracy"),
            "linear_probe_std": self.report.get("linear_probe_std"),
            "ece": self.report.get("ece"),
            "per_class_accuracy": self.report.get("per_class_accuracy"),
            "slices": self.report.get("slices"),
            "reliability": self.report.get("reliability"),
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
        table = summary_table(self.history)
        if table:
            emit(table)
        if self.report:
            print(f"evaluation: {EVALUATIONS[self.evaluation][1]}")
        print(
            f"TensorBoard logs: {self.out / 'tb'}  (open: tensorboard --logdir {self.out / 'tb'})"
        )
