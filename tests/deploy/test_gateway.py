"""Only the operator controls the server: the SuperLink listens on loopback behind a Fleet-only
gateway, enrollment goes through loopback, and the server will not start beside the CA key.

The slow test runs a real ``ssl-fed server start`` (flower-superlink + gateway) on random free
ports of 127.0.0.1 and talks to both ports, so every negative has a positive control.
"""

from __future__ import annotations

import asyncio
import http.client
import shutil
import ssl
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ssl_fed.cli import main
from ssl_fed.deploy.gateway import FleetGateway
from ssl_fed.deploy.pki import find_ca_key, init_pki, site_keygen
from tests.deploy.procs import BIN, deploy_env, free_port, processes, wait_for_port

CONTROL = ["list-runs", "start-run", "stop-run", "register-node", "list-nodes", "stream-logs"]


def _post(port: int, path: str, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    try:
        conn.request("POST", path, body=b"", headers={"content-type": "application/protobuf"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_server_start_refuses_while_the_ca_key_is_in_a_folder_it_reads(tmp_path, capsys):
    # Prepare: the operator copied the CA key back into the PKI folder under another name
    pki = init_pki(tmp_path / "pki", ["fl.example.org"])
    shutil.copy(pki.ca_key, tmp_path / "pki" / "backup.pem")
    port, control = free_port(), free_port()
    # Execute
    code = main(["server", "start", "--state-dir", str(tmp_path / "link"), "--pki",
                 str(tmp_path / "pki"), "--host", "127.0.0.1", "--port", str(port),
                 "--control-port", str(control)])  # fmt: skip
    # Assert: exit 2 naming the file; no state created, nothing listening
    assert code == 2
    assert "backup.pem" in capsys.readouterr().err
    assert not (tmp_path / "link").exists()


def test_pki_init_keeps_the_ca_key_out_of_the_server_folder(tmp_path):
    pki = init_pki(tmp_path / "pki", ["fl.example.org"])
    assert pki.ca_key.parent != pki.server_key.parent
    assert find_ca_key([tmp_path / "pki"], pki.ca_cert) is None
    assert find_ca_key([pki.ca_key.parent], pki.ca_cert) == pki.ca_key
    assert stat.S_IMODE(pki.ca_key.stat().st_mode) == 0o600


def _enroll(env: dict[str, str], pub: Path, port: int, ca: Path, name: str) -> int:
    cmd = [str(BIN / "ssl-fed"), "server", "enroll", str(pub), "--superlink",
           f"127.0.0.1:{port}", "--ca", str(ca), "--connection", name]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, timeout=60).returncode


def _nodes(env: dict[str, str]) -> str:
    cmd = [str(BIN / "flwr"), "supernode", "ls", "loop"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.slow
def test_only_the_fleet_api_is_public(tmp_path):
    # Prepare: PKI, one enrolled site key, one rogue key, the server on random ports
    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    site, rogue = site_keygen(tmp_path / "k", "site"), site_keygen(tmp_path / "k", "rogue")
    env = deploy_env(tmp_path / "flwr")
    public, control = free_port(), free_port()
    with processes(tmp_path / "logs") as procs:
        procs.start("server", [str(BIN / "ssl-fed"), "server", "start", "--state-dir",
                               str(tmp_path / "link"), "--pki", str(tmp_path / "pki"), "--host",
                               "127.0.0.1", "--port", str(public), "--control-port",
                               str(control)], env)  # fmt: skip
        wait_for_port(public)
        wait_for_port(control)
        # Execute + Assert: no Control API route is reachable through the public port
        for route in CONTROL:
            assert _post(public, f"/v1/control/{route}", pki.ca_cert) == 404
        assert _post(control, "/v1/control/list-runs", pki.ca_cert) == 200  # positive control
        # the rogue cannot enroll itself through the public port; the operator can via loopback
        assert _enroll(env, rogue[1], public, pki.ca_cert, "pub") != 0
        assert _enroll(env, site[1], control, pki.ca_cert, "loop") == 0
        assert "registered" in _nodes(env) and _nodes(env).count("│ none") == 1
        # an enrolled SuperNode works through the gateway; the unenrolled one is refused
        for name, key in (("site", site[0]), ("rogue", rogue[0])):
            procs.start(name, [str(BIN / "flower-supernode"), "--superlink",
                               f"127.0.0.1:{public}", "--root-certificates", str(pki.ca_cert),
                               "--auth-supernode-private-key", str(key), "--port",
                               str(free_port())], env)  # fmt: skip
        deadline = time.time() + 60
        while "online" not in _nodes(env) and time.time() < deadline:
            time.sleep(1)
        assert "online" in _nodes(env), procs.log("server")[-2000:]
        while "Failed to activate SuperNode" not in procs.log("rogue") and time.time() < deadline:
            time.sleep(0.5)
        assert "Failed to activate SuperNode" in procs.log("rogue")
        assert _nodes(env).count("│ none") == 1
    # the state DB and its journals are private to the operator
    for path in (tmp_path / "link").glob("superlink.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "link").stat().st_mode) == 0o700


def _asgi(path: str, method: str = "POST") -> tuple[int, bytes]:
    """Call the gateway app in-process; its upstream (a closed loopback port) is unreachable."""
    app = FleetGateway(f"http://127.0.0.1:{free_port()}", None)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), bytes(sent[1]["body"])


@pytest.mark.parametrize("route", CONTROL)
def test_gateway_answers_404_to_control_routes_without_forwarding(route: str) -> None:
    status, body = _asgi(f"/v1/control/{route}")
    assert status == 404 and b"only the Fleet API" in body


def test_gateway_forwards_fleet_routes_only_as_post() -> None:
    # a Fleet route is forwarded (502: the upstream is down), but not as GET
    assert _asgi("/v1/fleet/pull-messages")[0] == 502
    assert _asgi("/v1/fleet/pull-messages", "GET")[0] == 404
    assert _asgi("/v1/runtime/acquire-task")[0] == 404
    assert _asgi("/v1/fleet/../control/start-run")[0] == 404  # exact paths only, no traversal
