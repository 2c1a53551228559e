"""A warm ``flwr-clientapp``: each message's ClientApp process is forked from pre-imported Python.

Why it exists
-------------
flwr 1.42 runs every message to a site in a new ``flwr-clientapp`` process (``flower-superexec``'s
subprocess executor starts one per task, and ``run_clientapp`` serves exactly one message, then
exits; Flower's warm executors exist only for its Kubernetes executor). A fresh Python importing
flwr and ssl-fed's thin ClientApp costs ~1.7 s on 2 cores, paid five times per SecAgg+ round.

How
---
``ssl-fed site start`` runs :func:`serve` in its own single-threaded process (the *zygote*): it
imports Flower's ClientApp runtime and ssl-fed's ClientApp stack once, then waits on a Unix socket
in the site's state directory (mode 0600, authenticated with a random key file, 0600). The
``flwr-clientapp`` launcher that Flower starts per task (:mod:`ssl_fed.deploy.appcheck`) calls
:func:`launch` first: it sends its argv and environment; the zygote forks a keeper, which forks
the task process and sends back its pid and, later, its exit code; the launcher forwards
SIGTERM/SIGINT to the task and exits with its code, so to Flower it looks like the process it
started. The task process runs exactly what the launcher would have run
(:func:`ssl_fed.deploy.appcheck.main`: Flower's ``flwr-clientapp`` behind the FAB digest check),
with the launcher's argv and environment. When the zygote is not there (not started, crashed) the
launcher runs it itself: slower, same result.

Notes
-----
A forked process inherits its parent's random-generator states. Python's ``random`` reseeds
itself after a fork; the task process also reseeds NumPy's global generator from the OS
(:func:`_reseed`), and every key and mask of ssl-fed's and Flower's SecAgg+ comes from the OS
(``os.urandom`` / ``secrets`` / OpenSSL, which reseeds on fork) or from seeds agreed per round, so
no two tasks share randomness. The socket, the key and the zygote belong to the site's own user,
like the launcher and the warm worker (:mod:`ssl_fed.deploy.worker`): nothing is reachable from
the network, and no message can change which code runs (the FAB check runs in the task process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ZYGOTE_SOCKET = "clientapp.sock"
ZYGOTE_KEY = "clientapp.key"
ZYGOTE_ENV = "SSL_FED_ZYGOTE_DIR"
"""Folder of the zygote's socket and key (set by ``ssl-fed site start``; unset: no zygote)."""
PRELOAD = (
    "numpy",
    "flwr.supernode.cli.flwr_clientapp",
    "flwr.supernode.runtime.run_clientapp",
    "flwr.client.mod",
    "ssl_fed.deploy.appcheck",
    "ssl_fed.fed.clientapp",
)
"""What the zygote imports once: Flower's ClientApp runtime and ssl-fed's thin ClientApp stack
(the run's own ``client/app.py`` is imported by each task from the installed FAB, as always)."""


def zygote_paths(folder: str | Path) -> tuple[Path, Path]:
    """Return ``(socket, key)`` of the zygote serving the site whose state is ``folder``."""
    return Path(folder) / ZYGOTE_SOCKET, Path(folder) / ZYGOTE_KEY


def launch() -> int | None:
    """Run this ``flwr-clientapp`` task in the zygote; return its exit code, None if no zygote."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    folder = os.environ.get(ZYGOTE_ENV)
    if not folder:
        return None
    sock, key_path = zygote_paths(folder)
    try:
        conn = Client(str(sock), family="AF_UNIX", authkey=key_path.read_bytes())
        conn.send((list(sys.argv), dict(os.environ), os.getcwd()))
        pid = conn.recv()
    except (OSError, EOFError, ValueError, AuthenticationError):
        return None  # no zygote (or it went away before forking): run it here instead

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    before = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    with conn:
        try:
            return int(conn.recv())
        except (OSError, EOFError):
            return 1  # the keeper died: report a failed task
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def _reseed() -> None:
    """Give this forked task fresh randomness (see Notes)."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def clientapp_task() -> int:
    """Run the verifying ``flwr-clientapp`` (appcheck): the task the zygote forks by default."""
    from ssl_fed.deploy.appcheck import main

    return main()


def _run_task(task: Callable[[], int], argv: list[str], env: dict[str, str], cwd: str) -> int:
    """In the forked task process: become the launcher's task and run it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # as Flower's subprocess executor runs a ClientApp: output discarded
        os.dup2(devnull, fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = argv
    # a launched script imports from its own folder first, not from the zygote's working folder
    sys.path[0] = str(Path(argv[0]).resolve().parent)
    _reseed()
    try:
        return task()
    except SystemExit as done:  # flwr-clientapp ends with sys.exit(code)
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _keep(
    task: Callable[[], int], conn: Any, argv: list[str], env: dict[str, str], cwd: str
) -> None:
    """In the keeper: fork the task, report its pid and then its exit code to the launcher."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        code = 1
        try:
            code = _run_task(task, argv, env, cwd)
        finally:
            os._exit(code)
    conn.send(pid)
    _, status = os.waitpid(pid, 0)
    conn.send(os.waitstatus_to_exitcode(status))


def _stop_group(signum: int, frame: Any) -> None:
    """On SIGTERM (e.g. the site died): stop the keepers and tasks in flight, then exit."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(0, signal.SIGTERM)


def serve(
    folder: str | Path,
    preload: Sequence[str] = PRELOAD,
    task: Callable[[], int] = clientapp_task,
) -> None:
    """Preload, then fork one keeper per launcher connection (never returns)."""
    import importlib

    from ssl_fed.deploy.local_socket import owner_only_listener

    for name in preload:
        importlib.import_module(name)
    listener = owner_only_listener(*zygote_paths(folder))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # keepers are reaped by the kernel
    if os.getpgid(0) == os.getpid():  # our own group (site start): take running tasks along
        signal.signal(signal.SIGTERM, _stop_group)
    while True:
        try:
            conn = listener.accept()
            argv, env, cwd = conn.recv()
        except Exception:
            continue  # a failed handshake or a dropped launcher must not stop the zygote
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            listener.close()
            code = 1
            try:
                _keep(task, conn, argv, env, cwd)
                code = 0
            finally:
                os._exit(code)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
