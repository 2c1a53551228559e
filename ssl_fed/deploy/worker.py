"""The warm site worker: one long-lived process per site that holds torch, the data and the model.

Why it exists
-------------
flwr 1.42's SuperNode runs every message in a fresh ``flwr-clientapp`` process, in both isolation
modes: ``subprocess`` spawns it itself, ``process`` expects an external launcher to start one
``flwr-clientapp --token ...`` per task, and ``flwr.supernode.runtime.run_clientapp`` pulls exactly
one message, replies and exits. A SecAgg+ round sends each site five messages (budget query,
setup, share keys, collect masked vectors, unmask), and importing torch + opacus + the data stack
costs ~10 s on 2 cores, so a deployed round paid that five times over.

``ssl-fed site start`` therefore keeps one warm process next to the SuperNode: this worker, serving
a Unix socket in the site's state directory. The ClientApp process stays thin (flwr + numpy, ~1 s):
the SecAgg+ mod runs there as usual, and only the heavy steps (compose the config, answer the
budget query, declare the update for the guard, train one round) are forwarded here.

Notes
-----
Nothing new crosses the network: the socket is local (mode 0600, in the state dir) and the
connection is authenticated with a random key (``worker.key``, 0600) that only the site's own
user can read. The worker uses *its own* node config and site policy (given at start-up, from
the operator's flags and ``--policy`` file), never ones sent over the socket, so the ε budget,
the data path and the policy cannot be changed by a message. It checks the policy itself on
every budget query and every training (:mod:`ssl_fed.fed.policy`), so even an app that talks to
the socket directly cannot make it train a run the policy refuses. The pretext heads a
site keeps between rounds live in the worker's memory per run id, which is exactly as durable
as the SuperNode's ``Context.state`` they replace (lost on restart).
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Client
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssl_fed.deploy.local_socket import owner_only_listener

if TYPE_CHECKING:  # the ClientApp imports this module for call_worker: keep torch out of it
    from ssl_fed.privacy.policy import Refusal, SitePolicy

log = logging.getLogger("ssl_fed.deploy.worker")

WORKER_SOCKET = "worker.sock"
WORKER_KEY = "worker.key"


class WorkerError(RuntimeError):
    """The warm worker failed a request, or cannot be reached."""


@dataclass(frozen=True)
class WorkerFailure:
    """What the worker sends back instead of a result when a request raised."""

    kind: str
    message: str


def worker_paths(state_dir: str | Path) -> tuple[Path, Path]:
    """Return ``(socket, key)`` paths of the worker of the site whose state is ``state_dir``."""
    state = Path(state_dir)
    return state / WORKER_SOCKET, state / WORKER_KEY


class SiteWorker:
    """Answer the ClientApp's heavy requests with warm imports, data and per-run state."""

    def __init__(self, node_config: dict[str, Any], policy: SitePolicy) -> None:
        from ssl_fed.site import node, rounds

        self.node_config = dict(node_config)
        self.policy = policy
        self.node, self.rounds = node, rounds
        self.configs: dict[str, Any] = {}
        self.heads: dict[str, Any] = {}
        """Per run: the pretext heads that stay at the site between rounds (``None`` at first)."""

    def config(self, run_config: dict[str, Any]) -> Any:
        """Compose (once per distinct run config) the run's :class:`RootConfig`."""
        from ssl_fed.fed.runconfig import from_run_config

        key = repr(sorted(run_config.items()))
        if key not in self.configs:
            self.configs = {key: from_run_config(run_config)}
        return self.configs[key]

    def handle(self, request: tuple[Any, ...]) -> Any:
        """Serve one request: ``(kind, run_config, *args)``."""
        from ssl_fed.fed.policy import PolicyDeclinedError
        from ssl_fed.privacy.policy import DECLINED_BUDGET, check_run, refusal_code

        kind, run_config, *args = request
        cfg = self.config(dict(run_config))
        if kind == "config":
            return cfg
        if kind == "policy":
            return [r.code for r in check_run(cfg, self.policy)]
        if kind == "budget":
            return self.policy.epsilon_budget
        info = self.node.site_info(cfg, self.node_config)
        if kind == "declared":
            channels = self.node.site_data(cfg, info).channels
            return self.rounds.declared_update(cfg, channels, self.policy)
        if kind == "query":
            from ssl_fed.site.declared import declared_scalars

            run_id, rnd = args
            declared = declared_scalars(cfg, info)
            refusals = self.refusals(cfg, info, run_id)
            if refusals:
                return False, info.label, refusal_code(refusals), declared
            ok = bool(self.rounds.answer_budget_query(cfg, info, run_id, rnd))
            return ok, info.label, 0 if ok else DECLINED_BUDGET, declared
        if kind == "train":
            received, run_id, rnd = args
            refusals = self.refusals(cfg, info, run_id)
            if refusals:
                raise PolicyDeclinedError(
                    f"declined: policy ({', '.join(r.code for r in refusals)})"
                )
            kept = self.heads.get(run_id)
            result = self.rounds.train_site_round(
                cfg, info, received, kept, run_id, rnd, self.policy
            )
            if result.heads is not None:
                self.heads[run_id] = result.heads
            return result.delta, result.scalars
        raise WorkerError(f"unknown worker request {kind!r}")

    def refusals(self, cfg: Any, info: Any, run_id: str) -> list[Refusal]:
        """Return the policy refusals for one more round of ``run_id`` (empty: allowed)."""
        from ssl_fed.fed.policy import site_refusals

        site_cfg = self.node.site_config(cfg, info)

        def round_inputs() -> tuple[Any, int]:
            return self.rounds.site_ledger(site_cfg, info), len(self.node.site_data(site_cfg, info))

        return site_refusals(cfg, site_cfg, self.policy, round_inputs, run_id)


def serve(worker: SiteWorker, state_dir: str | Path) -> threading.Thread:
    """Listen on the site's socket in a daemon thread; one request per connection, in order."""
    sock, key_path = worker_paths(state_dir)
    listener = owner_only_listener(sock, key_path)

    def loop() -> None:
        while True:
            try:
                conn = listener.accept()
            except Exception as err:  # a failed handshake must not stop the site
                log.warning("rejected a worker connection: %s", err)
                continue
            with conn:
                try:
                    request = conn.recv()
                    try:
                        result: Any = worker.handle(request)
                    except Exception as err:
                        log.error("worker request failed:\n%s", traceback.format_exc())
                        result = WorkerFailure(type(err).__name__, str(err))
                    conn.send(result)
                except (EOFError, OSError) as err:
                    log.warning("worker connection lost: %s", err)

    thread = threading.Thread(target=loop, name="ssl-fed-site-worker", daemon=True)
    thread.start()
    return thread


def call_worker(state_dir: str | Path, *request: Any) -> Any:
    """Send one request to the site's warm worker and return its result (ClientApp side)."""
    sock, key_path = worker_paths(state_dir)
    try:
        key = key_path.read_bytes()
        conn = Client(str(sock), family="AF_UNIX", authkey=key)
    except OSError as err:
        raise WorkerError(
            f"cannot reach the site worker at {sock} ({err}); it runs inside `ssl-fed site "
            "start` - restart the site, or drop warm-worker from the node config"
        ) from err
    with conn:
        conn.send(request)
        result = conn.recv()
    if isinstance(result, WorkerFailure):
        raise WorkerError(f"site worker: {result.kind}: {result.message}")
    return result
