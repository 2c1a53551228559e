"""An owner-only, authenticated Unix socket for the site's helper processes (worker, zygote).

Notes
-----
Both the warm worker (:mod:`ssl_fed.deploy.worker`) and the ClientApp zygote
(:mod:`ssl_fed.deploy.zygote`) accept commands over a local socket. Anyone who can connect could
make them run a task, so: the socket is created under umask 0177 (mode 0600, owner only), and
every connection must answer ``multiprocessing``'s HMAC challenge with a fresh 32-byte key written
to a 0600 file beside it (created exclusively, after removing any stale socket and key).
"""

from __future__ import annotations

import os
import secrets
from multiprocessing.connection import Listener
from pathlib import Path


def owner_only_listener(sock: Path, key_path: Path) -> Listener:
    """Write a fresh key to ``key_path`` (0600) and listen on ``sock`` (0600) with it."""
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    key_path.unlink(missing_ok=True)
    key = secrets.token_bytes(32)
    with os.fdopen(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
        fh.write(key)
    old_umask = os.umask(0o177)
    try:
        return Listener(str(sock), family="AF_UNIX", authkey=key)
    finally:
        os.umask(old_umask)
