"""Running a site's ``flower-supernode``: its public site id, its local port, restarts, exit codes.

A site's label is derived from its enrolled key, so a site started without ``--site-id`` still
reports one stable label (metrics and the model card keep sites apart) and the operator can
compute the same number from the ``.pub`` file they enrolled: the first two bytes of
SHA-256 over the OpenSSH public-key line, big-endian, an integer in ``[0, 65535]`` (the guard's
``site`` range, :data:`ssl_fed.fed.guard.SCALAR_RANGES`). Two sites collide with probability
1/65536 per pair; ``--site-id`` overrides.

flwr 1.42's SuperLink refuses to activate a node whose key is still marked online (its last
heartbeat is younger than about 60 s), with the same public answer as for a key that was never
enrolled (``[code: 2004] Failed to activate SuperNode``; the detail stays in the server log). A
fresh restart therefore retries activation with bounded exponential back-off
(:class:`Retry`); only when every try is refused does the site stop, with the "enroll this key"
hint and an exit code that tells systemd not to restart (:data:`EXIT_NOT_ENROLLED`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ssl_fed.deploy.flwr_cli import DeployError

EXIT_OK = 0
"""The SuperNode stopped normally (SIGTERM/SIGINT, e.g. ``systemctl stop``)."""
EXIT_BAD_INPUT = 2
"""Bad data, flag, key file or port: fix the input; restarting cannot help."""
EXIT_NOT_ENROLLED = 3
"""Every activation try was refused: the key is not enrolled (or the same key runs elsewhere)."""
EXIT_RETRY = 75
"""Any other SuperNode failure (SuperLink unreachable, TLS, crash): restart (EX_TEMPFAIL)."""
EXIT_CODES = {
    EXIT_OK: "stopped normally",
    EXIT_BAD_INPUT: "bad input (data, flag, key file, port); fix it, do not restart",
    EXIT_NOT_ENROLLED: "key refused at activation (not enrolled?); enroll it, do not restart",
    EXIT_RETRY: "SuperNode failed (network, TLS, crash); restart later",
}
"""Every exit code of ``ssl-fed site start`` (deploy/ssl-fed-site.service lists 2 and 3 in
``RestartPreventExitStatus``)."""

ACTIVATION_REFUSED = "[code: 2004]"
"""What flwr 1.42's SuperNode prints when the SuperLink refuses to activate it."""
SITE_ID_MAX = 65535


def site_id_from_key(key: Path) -> int:
    """Return the site label of the node key at ``key`` (private OpenSSH key or its ``.pub``).

    Raises
    ------
    DeployError
        Naming ``--key`` when the file is not an OpenSSH key.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    data = key.read_bytes()
    try:
        if b"PRIVATE KEY" in data:
            public = serialization.load_ssh_private_key(data, password=None).public_key()
        else:
            public = serialization.load_ssh_public_key(data.strip())
        line = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError, AttributeError, UnsupportedAlgorithm) as err:
        raise DeployError(
            f"--key {key}: not an OpenSSH node key ({err}); make one with `ssl-fed site keygen`"
        ) from None
    return int.from_bytes(hashlib.sha256(line).digest()[:2], "big")


def runtime_port(port: int | None, host: str = "127.0.0.1") -> int:
    """Return ``port`` if free on ``host``, or a free port chosen by the OS when ``None``.

    Raises
    ------
    DeployError
        Naming ``--port`` when the given port is in use or not a port.
    """
    if port is not None and not 0 < port < 65536:
        raise DeployError(f"--port {port}: use a port in 1..65535, or omit --port")
    with socket.socket() as s:
        try:
            s.bind((host, port or 0))
        except OSError as err:
            raise DeployError(
                f"--port {port}: {host}:{port} is in use ({err.strerror}), e.g. by another site "
                "on this host; give a free port or omit --port to let `site start` pick one"
            ) from None
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Retry:
    """Bounded exponential back-off for refused activations: ``first``, 2×, … capped at ``cap``.

    The defaults wait up to ~150 s in total, longer than the SuperLink's ~60 s heartbeat window.
    """

    first: float = 5.0
    cap: float = 30.0
    total: float = 150.0

    def delays(self) -> list[float]:
        """Return the waits between tries (their sum is at most ``total``)."""
        out: list[float] = []
        wait = self.first
        while sum(out) + wait <= self.total:
            out.append(wait)
            wait = min(self.cap, wait * 2)
        return out


def exit_code(returncode: int, output: str, stopping: bool) -> int:
    """Map one SuperNode run to a documented code (:data:`EXIT_CODES`)."""
    if stopping or returncode in (0, -2, -15):
        return EXIT_OK
    if ACTIVATION_REFUSED in output:
        return EXIT_NOT_ENROLLED
    return EXIT_RETRY


def _die_with_parent() -> None:
    """In the child: get SIGTERM when ``site start`` dies (Linux), so no SuperNode outlives it."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


_PRCTL = _libc_prctl()
"""Resolved before any fork: the child only calls it (no dynamic loading after fork)."""


def _echo(stream: IO[str], tail: deque[str]) -> None:
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail.append(line)


def _run_once(
    cmd: Sequence[str], env: dict[str, str], on_start: Callable[[subprocess.Popen[str]], None]
) -> tuple[int, str]:
    """Run the SuperNode once, echoing its output; return (return code, output tail).

    The SuperNode runs in its own process group: ``flower-superexec``, which it spawns, can
    outlive a SuperNode that exits on an error (observed on a refused activation) and would hold
    the output pipe open forever; the group is terminated once the SuperNode has exited.
    """
    proc = subprocess.Popen(
        list(cmd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # only calls the pre-resolved prctl
    )
    on_start(proc)
    tail: deque[str] = deque(maxlen=200)
    assert proc.stdout is not None
    reader = threading.Thread(target=_echo, args=(proc.stdout, tail), daemon=True)
    reader.start()
    returncode = proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)  # leftovers of this SuperNode's own group only
    reader.join(timeout=10)
    return returncode, "".join(tail)


class SupernodeRunner:
    """Run the SuperNode, retry refused activations with back-off, and map the exit code."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], retry: Retry = Retry()) -> None:
        self.cmd, self.env, self.retry = list(cmd), env, retry
        self.stopping = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def stop(self, signum: int) -> None:
        """Forward a stop signal to the SuperNode and end any back-off wait."""
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def _started(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        print(f"flower-supernode started: pid {proc.pid}", flush=True)

    def run(self) -> int:
        """Run until a normal stop or a final failure; return a code of :data:`EXIT_CODES`."""
        delays = self.retry.delays()
        for attempt in range(len(delays) + 1):
            returncode, output = _run_once(self.cmd, self.env, self._started)
            code = exit_code(returncode, output, self.stopping.is_set())
            if code != EXIT_NOT_ENROLLED or attempt == len(delays):
                break
            print(
                f"activation refused (a restart within ~60 s looks the same as an unenrolled "
                f"key); retrying in {delays[attempt]:.0f} s",
                flush=True,
            )
            if self.stopping.wait(delays[attempt]):
                return EXIT_OK
        print(f"site stopped: exit {code} ({EXIT_CODES[code]})", flush=True)
        if code == EXIT_NOT_ENROLLED:
            print(
                "error: the SuperLink refused this site's key on every try. The operator must "
                "enroll its public key (`ssl-fed server enroll KEY.pub`); or another site runs "
                "with the same key.",
                flush=True,
            )
        return code


def start_zygote(state_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the site's warm ClientApp zygote (:mod:`ssl_fed.deploy.zygote`); it dies with us.

    It shares the site's console (a failed preload shows there); the tasks it forks discard their
    output, as Flower's own executor does. BLAS stays single-threaded: the zygote must not hold
    threads when it forks, and a ClientApp does no linear algebra worth a pool.
    """
    zenv = dict(env) | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ssl_fed.deploy.zygote", str(state_dir)],
        env=zenv,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # only calls the pre-resolved prctl
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc``'s process group (the zygote and any task still running) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
