"""Deployed sites (real SuperLink, TLS + node auth) refuse a weakened run and a foreign app.

Three `ssl-fed site start` daemons with the default policy (ε budget 8, ssl-fed SecAgg only).
The operator submits (1) a run with ``privacy=off`` and (2) a run whose ClientApp differs from
the sites' own by one line that would leave a marker file if it were ever imported. Neither run
trains anywhere: every ledger stays empty and the marker never appears.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_fed.deploy.flwr_cli import DEFAULT_CONNECTION, stage_app
from ssl_fed.deploy.pki import init_pki, site_keygen
from ssl_fed.privacy.ledger import LEDGER_FILE
from tests.deploy.procs import (
    BIN,
    ROOT,
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
    "eval.labels_per_class=[1]",
    f"sim.num_sites={NUM_SITES}",
    "sim.rounds=1",
    "aggregation.timeout=20",
    "aggregation.stage_timeout=20",
    "aggregation.query_timeout=30",
]


def _history(out: Path) -> list[dict[str, object]]:
    metrics = json.loads((out / "metrics.json").read_text())
    return list(metrics["history"])


def test_deployed_sites_refuse_a_weakened_run_and_a_foreign_app(tmp_path: Path) -> None:
    # Prepare: PKI, 3 enrolled sites with the default policy, one SuperLink
    pki = init_pki(tmp_path / "pki", ["127.0.0.1", "localhost"])
    keys = [site_keygen(tmp_path / "keys", f"site{i}") for i in range(NUM_SITES)]
    folders = write_digit_sites(tmp_path / "data", NUM_SITES)
    env = deploy_env(tmp_path / "flwr-cli")
    port, control = free_port(), free_port()
    link, ssl_fed = f"127.0.0.1:{port}", str(BIN / "ssl-fed")
    operator = f"127.0.0.1:{control}"  # the loopback control port: enroll and run go there
    states = [tmp_path / f"state_{i}" for i in range(NUM_SITES)]
    marker = tmp_path / "foreign-code-ran"
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
                "--pki",
                str(tmp_path / "pki"),
                "--control-port",
                str(control),
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
                    "--port",
                    str(free_port()),
                    "--site-id",
                    str(i),
                ],
                env,
            )

        # Execute (1): the server asks the sites to train without DP
        off = tmp_path / "run-off"
        run = procs.start(
            "run-off",
            [
                ssl_fed,
                "run",
                *RUN,
                "privacy=off",
                f"out={off}",
                "--superlink",
                operator,
                "--ca",
                str(pki.ca_cert),
            ],
            env,
        )
        # every site declines, so the run completes no round: `ssl-fed run` exits 2 and says so
        assert run.wait(timeout=300) == 2, procs.log("run-off")[-3000:]
        assert "completed no round" in procs.log("run-off")

        # Execute (2): a ClientApp that differs from the sites' own by one line
        foreign = stage_app(ROOT, [*RUN, f"out={tmp_path / 'run-foreign'}"], tmp_path / "app")
        with open(foreign / "client" / "app.py", "a", encoding="utf-8") as fh:
            fh.write(f"\n__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n")
        run = procs.start(
            "run-foreign",
            [str(BIN / "flwr"), "run", str(foreign), DEFAULT_CONNECTION, "--stream"],
            env,
        )
        run.wait(timeout=300)
        site_logs = "".join(procs.log(f"site{i}") for i in range(NUM_SITES))

    # Assert (1): every site declined by policy; no round had a participant
    assert "declined: policy" in site_logs and "privacy-off" in site_logs
    assert all(h["completed"] == [] for h in _history(off)), _history(off)
    # Assert (2): the foreign ClientApp never ran at any site
    assert not marker.exists()
    # Assert: nothing was charged anywhere
    for state in states:
        assert not (state / LEDGER_FILE).exists() or (state / LEDGER_FILE).read_text() == ""
