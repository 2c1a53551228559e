"""Two sites on one host with the documented command, and a fresh restart of one of them.

Real processes on 127.0.0.1: a TLS + node-auth SuperLink (`ssl-fed server start`), two enrolled
sites started exactly as docs/deployment.md's "three sites on one host" recipe shows (no
`--port`, no `--site-id`). One site is stopped (SIGTERM) and restarted at once, then killed
(SIGKILL, a crash: its node is not deactivated) and restarted at once: flwr 1.42 refuses the
activation while the old node is still marked online (`[code: 2004]`), and `site start` must
retry until the node is active again, without the enroll hint. No run is submitted (training
is covered by test_multiprocess).
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from ssl_fed.deploy.pki import init_pki, site_keygen
from ssl_fed.deploy.supernode import EXIT_RETRY, site_id_from_key
from tests.deploy.procs import BIN, Procs, deploy_env, free_port, processes, wait_for_port

pytestmark = pytest.mark.slow
ACTIVE = "SuperNode ID:"


def wait_for_log(procs: Procs, name: str, text: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in procs.log(name):
            return
        if procs.started[name].poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{name}: no {text!r} after {timeout}s:\n{procs.log(name)[-3000:]}")


def test_two_sites_one_host_and_a_fresh_restart(tmp_path: Path) -> None:
    # Prepare: PKI, one key folder per site, tiny image folders, the SuperLink, enrolment
    from PIL import Image

    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    env = deploy_env(tmp_path / "flwr-cli")
    port, control = free_port(), free_port()
    ssl_fed = str(BIN / "ssl-fed")
    names = ("a", "b")
    keys = {s: site_keygen(tmp_path / f"keys-{s}", s) for s in names}
    for s in names:
        (tmp_path / f"data-{s}").mkdir()
        for i in range(4):
            Image.new("L", (8, 8), color=i * 40).save(tmp_path / f"data-{s}" / f"{i}.png")
    with processes(tmp_path / "logs") as procs:
        procs.start(
            "superlink",
            [ssl_fed, "server", "start", "--state-dir", str(tmp_path / "link"), "--host",
             "127.0.0.1", "--port", str(port), "--control-port", str(control), "--pki",
             str(tmp_path / "pki")],
            env,
        )  # fmt: skip
        wait_for_port(port)
        wait_for_port(control)
        for s in names:
            enroll = procs.start(
                f"enroll-{s}",
                [ssl_fed, "server", "enroll", str(keys[s][1]), "--superlink",
                 f"127.0.0.1:{control}", "--ca", str(pki.ca_cert)],
                env,
            )  # fmt: skip
            assert enroll.wait(timeout=120) == 0, procs.log(f"enroll-{s}")

        def site(s: str, log: str) -> None:
            procs.start(
                log,
                [ssl_fed, "site", "start", "--data", str(tmp_path / f"data-{s}"), "--state-dir",
                 str(tmp_path / f"state-{s}"), "--superlink", f"127.0.0.1:{port}", "--ca",
                 str(pki.ca_cert), "--key", str(keys[s][0]), "--epsilon-budget", "8"],
                env,
            )  # fmt: skip

        # Execute: both sites with the documented command
        for s in names:
            site(s, s)
        for s in names:
            wait_for_log(procs, s, ACTIVE, 240)
        # Stop a (as systemctl stop does) and start it again at once
        procs.kill("a", signal.SIGTERM)
        stopped = procs.started["a"].returncode
        site("a", "a-again")
        wait_for_log(procs, "a-again", ACTIVE, 300)
        # Crash its SuperNode (SIGKILL: no deactivation): the site exits 75 (restart); start it
        # again at once: the SuperLink still marks the node online, so activation is retried
        pid = int(re.findall(r"flower-supernode started: pid (\d+)", procs.log("a-again"))[-1])
        os.killpg(pid, signal.SIGKILL)
        crashed = procs.started["a-again"].wait(timeout=60)
        site("a", "a-crashed")
        wait_for_log(procs, "a-crashed", ACTIVE, 400)

        # Assert: distinct key-derived ids and free ports; clean stop without the enroll hint
        ports = set()
        for s, log in (("a", "a"), ("b", "b"), ("a", "a-again"), ("a", "a-crashed")):
            text = procs.log(log)
            assert f"site id {site_id_from_key(keys[s][1])};" in text
            ports.add(re.findall(r"local port (\d+)", text)[0])
        assert len(ports) >= 2
        assert stopped == 0, procs.log("a")
        assert "server enroll" not in procs.log("a")
        assert "server enroll" not in procs.log("a-again")
        assert "server enroll" not in procs.log("a-crashed")
        assert crashed == EXIT_RETRY, procs.log("a-again")
        assert "retrying in" in procs.log("a-crashed")
        print("retries after stop:", procs.log("a-again").count("retrying in"))
        print("retries after crash:", procs.log("a-crashed").count("retrying in"))
