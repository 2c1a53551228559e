"""The SuperLink's only public face: a TLS reverse proxy that forwards the Fleet API, nothing else.

flwr 1.42's ``flower-superlink`` serves the Fleet API (SuperNodes), the Control API (register
nodes, submit/list/stop runs) and the Runtime API (ServerApp tasks) on **one** HTTP port, and its
open-source Control API has no authentication: whoever reaches that port with the CA certificate
can enroll a key or submit a run (issue 11). ``--control-api-address`` and
``--fleet-api-address`` are deprecated no-ops in 1.42 (checked in
``flwr/superlink/cli/flower_superlink.py``), so the APIs cannot be split by address.

``ssl-fed server start`` therefore binds the SuperLink to 127.0.0.1 and puts this gateway on the
public address. It terminates TLS with the server certificate and forwards a request upstream
(over TLS to the loopback SuperLink, verified against the federation CA) only when it is a
``POST`` to one of :data:`FLEET_PATHS`, the routes of ``flwr/superlink/routers/fleet/router.py``.
Everything else (``/v1/control/*``, ``/v1/runtime/*``, ``/docs``, ``/health``) gets 404 without
reaching the SuperLink. Node authentication is unchanged: the SuperNode's signed-timestamp
headers pass through and the SuperLink checks them (``--enable-supernode-auth``), and with node
auth on it refuses ``register-node`` from the Fleet API, so keys enter only through the loopback
Control API (``ssl-fed server enroll`` on the server host, or through an SSH tunnel).

Notes
-----
Guarantee: a party without a shell on the server host (or the operator's SSH tunnel) can reach
only the Fleet API; it cannot enroll a node, submit, list or stop runs, or act as a ServerApp.
What it does not give: the Fleet API itself stays as Flower ships it (an enrolled site can pull
only its own messages; rate limiting is not ours).
"""

from __future__ import annotations

import signal
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

FLEET_PATHS = frozenset(
    f"/v1/fleet/{name}"
    for name in (
        "register-node",
        "activate-node",
        "deactivate-node",
        "unregister-node",
        "send-node-heartbeat",
        "pull-messages",
        "push-messages",
        "get-run",
        "get-fab",
        "push-object",
        "pull-object",
        "confirm-message-received",
    )
)
MAX_BODY = 512 * 2**20
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "host",
        "content-length",
        "proxy-authorization",
        "proxy-authenticate",
        "trailer",
    }
)
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FleetGateway:
    """ASGI app: forward Fleet API calls to ``upstream`` (``https://127.0.0.1:PORT``), 404 else."""

    def __init__(self, upstream: str, ca_cert: Path | None) -> None:
        self.upstream = upstream.rstrip("/")
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_cert)) if ca_cert is not None else False
        )
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """One pooled upstream client, created inside the server's event loop."""
        if self._client is None:
            self._client = httpx.AsyncClient(verify=self.verify, timeout=httpx.Timeout(300.0))
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI HTTP request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        if scope["method"] != "POST" or scope["path"] not in FLEET_PATHS:
            await _respond(send, 404, b"not found: only the Fleet API is served here\n")
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, b"request body too large\n")
            return
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        try:
            up = await self.client().post(
                self.upstream + scope["path"], content=body, headers=headers
            )
        except httpx.HTTPError:
            await _respond(send, 502, b"SuperLink unavailable\n")
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in up.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"
        ]
        out.append((b"content-length", str(len(up.content)).encode()))
        await send({"type": "http.response.start", "status": up.status_code, "headers": out})
        await send({"type": "http.response.body", "body": up.content})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


def serve_gateway(
    host: str,
    port: int,
    upstream: str,
    tls: tuple[Path, Path, Path] | None,
    alive: Callable[[], bool],
) -> None:
    """Serve :class:`FleetGateway` on ``host:port`` until a signal, or until ``alive()`` is false.

    ``tls`` is (CA cert, server cert, server key); ``None`` serves plain HTTP (``--insecure``).
    uvicorn re-raises a captured SIGTERM after its graceful shutdown; the handler installed here
    turns it into ``SystemExit`` so the caller's ``finally`` still stops the SuperLink.
    """
    ca = tls[0] if tls else None
    config = uvicorn.Config(
        FleetGateway(upstream, ca),
        host=host,
        port=port,
        ssl_certfile=str(tls[1]) if tls else None,
        ssl_keyfile=str(tls[2]) if tls else None,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)

    def watch() -> None:
        while not server.should_exit:
            if not alive():
                server.should_exit = True
            threading.Event().wait(0.5)

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    threading.Thread(target=watch, daemon=True).start()
    server.run()
