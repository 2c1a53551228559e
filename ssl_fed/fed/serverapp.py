"""The ssl-fed ServerApp: config -> initial encoder -> aggregator rounds -> tracking.

One hop per module: the budget query, sampling and update live in :mod:`ssl_fed.fed.rounds`; the
aggregator ``aggregation.name`` selects (:mod:`ssl_fed.fed.aggregators`) runs the rounds over the
grid; evaluation, logging and checkpoints are in :mod:`ssl_fed.fed.tracking`. ``server/app.py`` is
the adapter ``flwr run`` loads; :mod:`ssl_fed.fed.simulation` builds the same app from a composed
config.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.fed import arrays as fa
from ssl_fed.fed.aggregators import build_aggregator
from ssl_fed.fed.progress import emit
from ssl_fed.fed.rounds import SiteRounds
from ssl_fed.fed.runconfig import from_run_config
from ssl_fed.fed.tracking import CHECKPOINT, RunTracker, load_checkpoint
from ssl_fed.models import build_model
from ssl_fed.train.job import init_summary, load_init

log = logging.getLogger("ssl_fed.server")


def run_server(grid: Grid, context: Context, cfg: RootConfig, *, pooled: bool = False) -> None:
    """Run (or resume) the federation described by ``cfg`` on ``grid``.

    ``pooled`` (simulations only) lets the tracker probe on the pooled site data as a labelled
    benchmark outside the privacy guarantee; a server built from a run config never does.
    """
    torch.manual_seed(cfg.sim.seed)
    tracker_cfg = cfg
    ckpt = load_checkpoint(cfg.out) if cfg.resume else None
    if cfg.resume and ckpt is None:
        log.warning("resume=true but no checkpoint in %s: starting a new run", cfg.out)
    if ckpt is None and not cfg.resume and (load_checkpoint(cfg.out) is not None):
        raise ConfigError(
            f"{cfg.out} already holds a run; pass resume=true to continue it, or use a new out="
        )
    run_id = ckpt["run_id"] if ckpt else (cfg.run_id or uuid.uuid4().hex[:12])
    done = int(ckpt["round"]) if ckpt else 0
    history = list(ckpt["history"]) if ckpt else []
    aggregator = build_aggregator(cfg)  # a resume it cannot continue fails before any write
    ckpt_file = Path(cfg.out) / CHECKPOINT if ckpt else None  # None: no checkpoint at all
    state = ckpt.get("server_state") if ckpt else None  # None in a checkpoint: an older run's
    aggregator.restore_server_state(state, checkpoint=ckpt_file)
    tracker = RunTracker(tracker_cfg, run_id, history, pooled=pooled)
    model = tracker.model
    specs = fa.array_specs(model, cfg.aggregation.share_heads)
    torch.manual_seed(cfg.sim.seed)
    init = build_model(cfg.encoder, tracker.channels)
    tracker.init_info = init_summary(cfg.init, load_init(init, cfg.init))
    if ckpt:
        arrays = [a.astype("float32") for a in ckpt["arrays"]]
        log.info("resuming run %s after round %d", run_id, done)
    else:
        arrays = fa.state_to_arrays(fa.federated_state(init, cfg.aggregation.share_heads))
        log.info("initial encoder: %s", tracker.init_info)
    last = min(cfg.sim.rounds, cfg.sim.halt_after_round or cfg.sim.rounds)
    rounds = SiteRounds(cfg, arrays, specs, run_id=run_id, on_round_end=tracker.end_round)
    log.info("aggregation: %s", cfg.aggregation.name)
    tracker.aggregator = aggregator  # its server state goes into every checkpoint
    if last > done:
        aggregator.start(grid, context, rounds, done + 1, last)
    tracker.write_metrics()
    tracker.close()


def make_server_app(cfg: RootConfig | None = None, *, pooled: bool = False) -> ServerApp:
    """Build the ServerApp; ``cfg=None`` composes it from the run config (``flwr run``).

    ``pooled=True`` is for :mod:`ssl_fed.fed.simulation` alone (the server probes on the pooled site
    data, labelled as a benchmark outside the guarantee); nothing in a run config can set it.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_cfg = cfg if cfg is not None else from_run_config(dict(context.run_config))
        run_server(grid, context, run_cfg, pooled=pooled and cfg is not None)
        if cfg is None:  # deployed: `ssl-fed run` exits 0 only on the completion line
            import json

            from ssl_fed.deploy.run_outcome import completion_line
            from ssl_fed.fed.simulation import check_some_round_completed

            path = Path(run_cfg.out) / "metrics.json"
            metrics = json.loads(path.read_text())
            check_some_round_completed(metrics, path, "the run")  # raises: exit 2
            history = metrics.get("history", [])
            done = sum(1 for h in history if h.get("completed") and not h.get("skipped"))
            emit(completion_line(done, run_cfg.sim.rounds, str(path)))

    return app
