"""A real deployment on 127.0.0.1: TLS + node auth SuperLink, 3 site daemons, DP + SecAgg+.

The operator enrolls and submits through the SuperLink's loopback control port; sites (and the
rogue) connect to the public Fleet-only gateway port.

One run of 2 rounds. Site 2 is killed (SIGKILL, whole process group) during round 2, after its
ledger charged the round, i.e. mid-SecAgg+: the round must still finish from the 2 survivors.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from pathlib import Path

import pytest

from ssl_fed.deploy.pki import init_pki, site_keygen
from ssl_fed.privacy.ledger import LEDGER_FILE
from tests.deploy.procs import (
    BIN,
    deploy_env,
    free_port,
    processes,
    wait_for_port,
    write_digit_sites,
)

pytestmark = pytest.mark.slow
NUM_SITES = 3
RUN = [
    "encoder.width=8",
    "encoder.norm_groups=4",
    "encoder.proj_hidden=16",
    "encoder.proj_dim=8",
    "train.local_epochs=1",
    "train.batch_size=32",
    "eval.draws=1",
    "eval.labels_per_class=[1,5]",
    f"sim.num_sites={NUM_SITES}",
    "sim.rounds=2",
    "aggregation=flower-secaggplus",
    "aggregation.num_shares=3",
    "aggregation.reconstruction_threshold=2",
    "aggregation.timeout=60",  # masked-input stage incl. training; 20 s timed out at load 17
    "aggregation.query_timeout=30",
]


def ledger_rounds(state_dir: Path) -> list[int]:
    path = state_dir / LEDGER_FILE
    if not path.is_file():
        return []
    rounds = []
    for line in path.read_text().splitlines():
        try:
            rounds.append(int(json.loads(line)["round"]))
        except (ValueError, KeyError, TypeError):
            continue
    return rounds


def kill_when_charged(procs, name: str, state_dir: Path, rnd: int, done: threading.Event) -> None:
    while not done.is_set():
        if rnd in ledger_rounds(state_dir):
            procs.kill(name)
            return
        time.sleep(0.1)


def test_tls_auth_deployment_with_dp_secagg_and_a_dropout(tmp_path: Path) -> None:
    # Prepare: PKI, keys, data, one SuperLink
    pki = init_pki(tmp_path / "pki", ["127.0.0.1", "localhost"])
    keys = [site_keygen(tmp_path / "keys", f"site{i}") for i in range(NUM_SITES)]
    rogue_key, _ = site_keygen(tmp_path / "keys", "rogue")
    roster = tmp_path / "roster"  # the enrolled sites' public keys, exchanged between the sites
    roster.mkdir()
    for _, public in keys:
        (roster / public.name).write_bytes(public.read_bytes())
    folders = write_digit_sites(tmp_path / "data", NUM_SITES)
    env = deploy_env(tmp_path / "flwr-cli")
    port, control = free_port(), free_port()
    link, operator = f"127.0.0.1:{port}", f"127.0.0.1:{control}"
    ssl_fed = str(BIN / "ssl-fed")
    states = [tmp_path / f"state_{i}" for i in range(NUM_SITES)]
    policy = tmp_path / "site-policy.yaml"  # these sites also accept Flower's stock SecAgg+
    policy.write_text("aggregations: [secagg, flower-secaggplus]\n")
    out = tmp_path / "server-run"
    started = time.time()
    with processes(tmp_path / "logs") as procs:
        procs.start(
            "superlink",
            [
                ssl_fed,
                "server",
                "start",
                "--state-dir",
                str(tmp_path / "link"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--control-port",
                str(control),
                "--pki",
                str(tmp_path / "pki"),
            ],
            env,
        )
        wait_for_port(port)
        wait_for_port(control)
        for i, (_, public) in enumerate(keys):
            enroll = procs.start(
                f"enroll{i}",
                [
                    ssl_fed,
                    "server",
                    "enroll",
                    str(public),
                    "--superlink",
                    operator,
                    "--ca",
                    str(pki.ca_cert),
                ],
                env,
            )
            assert enroll.wait(timeout=60) == 0, procs.log(f"enroll{i}")
        for i, ((private, _), folder) in enumerate(zip(keys, folders, strict=True)):
            procs.start(
                f"site{i}",
                [
                    ssl_fed,
                    "site",
                    "start",
                    "--data",
                    str(folder),
                    "--state-dir",
                    str(states[i]),
                    "--superlink",
                    link,
                    "--ca",
                    str(pki.ca_cert),
                    "--key",
                    str(private),
                    "--epsilon-budget",
                    "8",
                    "--policy",
                    str(policy),
                    "--port",
                    str(free_port()),
                    "--site-id",
                    str(i),
                    "--public-size",  # declared (~599 images each): the sites report ε
                    "512",
                    "--roster",  # SecAgg keys and survivor sets signed with the node keys
                    str(roster),
                ],
                env,
            )
        rogue = procs.start(
            "rogue",
            [
                str(BIN / "flower-supernode"),
                "--superlink",
                link,
                "--root-certificates",
                str(pki.ca_cert),
                "--auth-supernode-private-key",
                str(rogue_key),
                "--port",
                str(free_port()),
                "--node-config",
                'data-path="/x" state-dir="/y"',
            ],
            env,
        )

        # Assert: plaintext HTTP to the TLS port gets no HTTP answer
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("GET", "/")
            conn.getresponse()
        conn.close()
        # ... while TLS with the CA works (sanity check of the negative above)
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        with context.wrap_socket(
            __import__("socket").create_connection(("127.0.0.1", port), timeout=10),
            server_hostname="127.0.0.1",
        ) as tls:
            assert tls.version() is not None

        # Execute: 2 rounds; site 2 dies mid-round 2
        done = threading.Event()
        killer = threading.Thread(
            target=kill_when_charged, args=(procs, "site2", states[2], 2, done), daemon=True
        )
        killer.start()
        run = procs.start(
            "run",
            [ssl_fed, "run", *RUN, f"out={out}", "--superlink", operator, "--ca", str(pki.ca_cert)],
            env,
        )
        try:
            code = run.wait(timeout=480)  # a loaded 2-core machine: ~20 s per SecAgg stage
        finally:
            done.set()

        # Assert: the unregistered node was rejected
        # (flwr logs exit code 305, ApiError 2004 "Failed to activate SuperNode"; its helper
        # processes keep retrying, so the log is the signal, and teardown stops the group)
        deadline = time.time() + 60
        while "Failed to activate SuperNode" not in procs.log("rogue") and time.time() < deadline:
            time.sleep(0.5)
        assert "Exit Code: 305" in procs.log("rogue")
        assert "[code: 2004]" in procs.log("rogue")
        assert rogue.poll() is None or rogue.returncode != 0
        assert code == 0, procs.log("run")[-3000:]
    elapsed = time.time() - started

    # Assert: the run completed both rounds; round 2 finished without site 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rounds_completed"] == 2, procs.log("run")[-3000:]
    assert "secagg" in str(metrics["secure_aggregation"])
    assert metrics["history"][0]["completed"] == [0, 1, 2]
    assert metrics["history"][1]["completed"] == [0, 1]
    assert 2 in metrics["history"][1]["dropped"]
    # Each site's own ledger advanced (site 2 was charged for round 2 before it died)
    for state in states:
        assert ledger_rounds(state) == [1, 2]
    assert 0 < metrics["epsilon_max"] <= 8.0
    print(f"deployment test wall time: {elapsed:.1f}s")
