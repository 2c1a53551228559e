"""Simulate an ssl-fed federation on one machine: ``ssl-fed simulate key=val ...``.

``N = sim.num_sites`` virtual sites run as Flower SuperNodes on the Ray backend
(``flwr.simulation.run_simulation``, ``sim.client_cpus`` CPUs per site), each holding one
partition of the dataset and its own ledger under ``<out>/sites/site_<id>/``. ``run_simulation``
passes no run config, so the composed config reaches the apps through factory closures
(:func:`ssl_fed.fed.clientapp.make_client_app`, :func:`ssl_fed.fed.serverapp.make_server_app`);
``flwr run .`` reaches the same config through :mod:`ssl_fed.fed.runconfig`. Hydra sweeps
(``python -m simulations.run --multirun ...``) call :func:`run_federation` from the thin
``simulations/run.py``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ssl_fed.config import ConfigError, RootConfig, load_config
from ssl_fed.privacy.engine import plan_federated_trainings

log = logging.getLogger("ssl_fed.simulate")
FLOWER_NOISE = ("DEPRECATED FEATURE", "Manually terminating")
"""Flower warnings that say nothing to a user of ``ssl-fed simulate`` (shown with ``-v``)."""


class QuietFlower(logging.Filter):
    """Pass Flower's errors and real warnings; drop its INFO/DEBUG lines and :data:`FLOWER_NOISE`.

    Installed on the ``flwr`` logger itself, so it applies both to Flower's own console handler
    and to the records that propagate to the root logger ``ssl-fed`` configures.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` reaches the terminal."""
        if record.levelno >= logging.ERROR:
            return True
        if record.levelno < logging.WARNING:
            return False
        return not any(noise in record.getMessage() for noise in FLOWER_NOISE)


def verbose() -> bool:
    """``ssl-fed -v`` (root logger at INFO or below) shows Flower's and Ray's own output."""
    return logging.getLogger().isEnabledFor(logging.INFO)


@contextmanager
def quiet_flower(loud: bool) -> Iterator[None]:
    """Hide Flower's noise for the duration of a simulation unless ``loud``."""
    if loud:
        yield
        return
    flwr_log, quiet = logging.getLogger("flwr"), QuietFlower()
    flwr_log.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Tip: In future versions of Ray")
            yield
    finally:
        flwr_log.removeFilter(quiet)


def backend_config(cfg: RootConfig, loud: bool) -> dict[str, Any]:
    """Ray settings: CPUs per site, Ray on 127.0.0.1 only, Ray's own output only when ``loud``.

    ``init_args`` reach ``ray.init`` unchanged (Flower 1.42, ``RayBackend.init_ray``), but
    ``_node_ip_address="127.0.0.1"`` does not bind Ray to the loopback: Ray 2.55's
    ``resolve_ip_for_localhost`` replaces it with the machine's reachable address. Ray keeps its
    node on 127.0.0.1 only when it runs as a single-machine "cluster"; :func:`run_federation`
    sets that (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) before Ray is imported. Quiet (the default),
    Ray logs errors only and does not forward the site processes' output: a site's failure still
    reaches the server as an error reply, logged by Flower at ERROR, and ``-v`` shows the rest.
    """
    init_args: dict[str, Any] = {
        "num_cpus": max(1, os.cpu_count() or 1),
        "include_dashboard": False,
    }
    if not loud:
        init_args |= {"logging_level": "ERROR", "log_to_driver": False}
    return {
        "client_resources": {"num_cpus": cfg.sim.client_cpus, "num_gpus": 0.0},
        "init_args": init_args,
    }


class NoRoundCompletedError(ConfigError):
    """No round of the simulation updated the model; reported like a configuration error.

    A ``ConfigError`` so that ``ssl-fed simulate`` prints one ``error:`` line and exits 2: the
    causes (every site out of budget, timeouts too short for the machine, too few sites for
    secure aggregation) are fixed in the configuration.
    """


def check_some_round_completed(
    metrics: dict[str, Any], path: Path, what: str = "the simulation"
) -> None:
    """Raise :class:`NoRoundCompletedError` unless a round had completed sites and was applied."""
    history = metrics.get("history", [])
    if any(h.get("completed") and not h.get("skipped") for h in history):
        return
    if not history:
        reason = "no round ran (every round was already done, or the server stopped early)"
    else:
        last = history[-1]
        reason = (
            f"in all {len(history)} rounds no site update was applied (last round: "
            f"declined {last.get('declined')}, dropped {last.get('dropped')}, "
            f"skipped: {last.get('skipped')})"
        )
    raise NoRoundCompletedError(
        f"{what} completed no round: {reason}. Check the sites' ε budgets "
        f"(ssl-fed ledger show), aggregation.query_timeout/timeout, and sim.num_sites; "
        f"details in {path}"
    )


def prepare_config(cfg: RootConfig) -> RootConfig:
    """Fix what a federation implies: no progress bars; σ planned for ``sim.rounds`` trainings.

    The planned trainings are the privacy engine's one rule
    (:func:`~ssl_fed.privacy.engine.plan_federated_trainings`), which every site applies again
    itself, so ``flwr run`` gets the same σ; here it also makes the run's recorded config say so.
    """
    return plan_federated_trainings(replace(cfg, train=replace(cfg.train, progress=False)))


def run_federation(cfg: RootConfig) -> dict[str, Any]:
    """Run the simulation of ``cfg`` and return the contents of its ``metrics.json``."""
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray reads this once, when first imported: "0" = no multi-machine cluster, so its node
    # address is 127.0.0.1 (checked: ray.nodes()[0]["NodeManagerAddress"] with Ray 2.55).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from flwr.simulation import run_simulation

    from ssl_fed.fed.clientapp import make_client_app
    from ssl_fed.fed.serverapp import make_server_app

    cfg = prepare_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    started, loud = time.time(), verbose()
    # Flower 1.42 has no non-deprecated Python entry point for a simulation: `flwr run` (the
    # recommended one) is a CLI that loads the apps from a project's pyproject.toml and passes
    # config only as a flat run config, so `run_simulation` stays, its banner hidden unless -v.
    with quiet_flower(loud):
        run_simulation(
            server_app=make_server_app(cfg, pooled=True),
            client_app=make_client_app(cfg, identity_secret=secrets.token_bytes(32)),
            num_supernodes=cfg.sim.num_sites,
            backend_config=backend_config(cfg, loud),
            verbose_logging=loud,
        )
    path = out / "metrics.json"
    if not path.is_file():
        raise RuntimeError(f"the simulation wrote no {path}; see the log above for the error")
    metrics: dict[str, Any] = json.loads(path.read_text())
    metrics["simulation_wall_time_s"] = time.time() - started
    path.write_text(json.dumps(metrics, indent=2))
    print(f"metrics: {path}")  # the tracker already printed the evaluation label and TB path
    check_some_round_completed(metrics, path)
    return metrics


def simulate(overrides: list[str]) -> dict[str, Any]:
    """``ssl-fed simulate [OVERRIDES...]``: compose, validate, simulate, return metrics.

    Without ``out=`` the run goes to ``outputs/simulate/<YYYYmmdd-HHMMSS>``.
    """
    overrides = list(overrides)
    if not any(o.split("=", 1)[0].lstrip("+") == "out" for o in overrides):
        overrides.append(f"out=outputs/simulate/{time.strftime('%Y%m%d-%H%M%S')}")
    return run_federation(load_config(overrides))
