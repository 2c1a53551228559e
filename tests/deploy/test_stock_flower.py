"""The "stock Flower binaries" recipe of docs/deployment.md, followed literally on 127.0.0.1.

``flower-superlink --insecure``, one ``flower-supernode`` per site with the node-config keys the
ClientApp reads (``data-path``, ``state-dir``, ``site-id``, ``public-size``, ``epsilon-budget``)
and its own ``--port``, then ``flwr run APP CONNECTION --run-config '...' --stream``. No ssl-fed
launcher, no warm worker: every message runs in-process in a fresh ``flwr-clientapp``.

flwr 1.42 refuses a ``--run-config`` key that ``[tool.flwr.app.config]`` does not declare, so the
tiny-encoder keys go into that table of a copy of the app (the recipe's "declare it first" step);
``sim.num_sites``, ``sim.rounds`` and ``out`` are declared in the project's own table.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from ssl_fed.privacy.ledger import LEDGER_FILE
from tests.deploy.procs import BIN, ROOT, deploy_env, free_port, processes, wait_for_port

pytestmark = pytest.mark.slow
NUM_SITES = 3
ROUNDS = 1
TINY = """
"encoder.width" = 8
"encoder.norm_groups" = 4
"encoder.proj_hidden" = 16
"encoder.proj_dim" = 8
"train.local_epochs" = 1
"train.batch_size" = 32
"train.progress" = false
"eval.draws" = 1
"eval.labels_per_class" = "[1,5]"  # lists travel as Hydra strings
"""


def write_npz_sites(root: Path, num_sites: int) -> list[Path]:
    """Write the digits images (uint8, 8x8) round robin into one ``site_<i>.npz`` per site."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(num_sites):
        path = root / f"site_{i}.npz"
        np.savez(path, images=images[i::num_sites], labels=digits.target[i::num_sites])
        paths.append(path)
    return paths


def copy_app(dest: Path) -> Path:
    """Copy the Flower app and declare the tiny-encoder keys in its ``[tool.flwr.app.config]``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in ("server", "client", "ssl_fed", "configs"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    text = (ROOT / "pyproject.toml").read_text()
    table = "[tool.flwr.app.config]\n"
    assert table in text
    (dest / "pyproject.toml").write_text(text.replace(table, table + TINY.lstrip(), 1))
    return dest


def ledger_rounds(state_dir: Path) -> list[int]:
    path = state_dir / LEDGER_FILE
    if not path.is_file():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [int(e["round"]) for e in entries if e.get("kind") == "charge"]


def test_stock_flower_binaries_run_dp_secagg(tmp_path: Path) -> None:
    # Prepare: data, a copy of the app, one CLI connection, an environment per process
    data = write_npz_sites(tmp_path / "data", NUM_SITES)
    app = copy_app(tmp_path / "app")
    port = free_port()
    cli_home = tmp_path / "flwr-cli"
    cli_home.mkdir()
    (cli_home / "config.toml").write_text(
        '[superlink]\ndefault = "stock"\n\n'
        f'[superlink.stock]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )

    def env(home: Path) -> dict[str, str]:
        return deploy_env(home) | {"FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}

    states = [tmp_path / f"state_{i}" for i in range(NUM_SITES)]
    out = tmp_path / "run-out"
    started = time.time()
    with processes(tmp_path / "logs") as procs:
        (tmp_path / "link").mkdir()
        procs.start(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database",
                str(tmp_path / "link" / "state.db"),
            ],
            env(tmp_path / "link"),
        )
        wait_for_port(port)
        for i, (npz, state) in enumerate(zip(data, states, strict=True)):
            node_config = (
                f'data-path="{npz}" state-dir="{state}" site-id={i} '
                "public-size=512 epsilon-budget=8.0"
            )
            procs.start(
                f"site{i}",
                [
                    str(BIN / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    node_config,
                ],
                env(tmp_path / f"sn{i}"),
            )

        # Execute: one run of ROUNDS rounds, DP-SGD on, ssl-fed's SecAgg
        run_config = f"sim.num_sites={NUM_SITES} sim.rounds={ROUNDS} out='{out}'"
        run = procs.start(
            "run",
            [str(BIN / "flwr"), "run", str(app), "stock", "--run-config", run_config, "--stream"],
            env(cli_home),
        )
        code = run.wait(timeout=900)
        assert code == 0, procs.log("run")[-3000:]
    elapsed = time.time() - started

    # Assert: every round completed with all three sites, each charged once per round
    assert (out / "metrics.json").is_file(), procs.log("run")[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rounds_completed"] == ROUNDS
    assert "secagg" in str(metrics["secure_aggregation"])
    assert sorted(metrics["history"][0]["completed"]) == list(range(NUM_SITES))
    for state in states:
        assert ledger_rounds(state) == list(range(1, ROUNDS + 1))
    assert 0 < metrics["epsilon_max"] <= 8.0
    # ... and the node-config keys reached the ClientApp: site ids, declared format and size
    assert sorted(metrics["epsilon_per_site"]) == [str(i) for i in range(NUM_SITES)]
    expected = {"format": "npz", "public_size": 512}
    assert metrics["sites_declared"] == {str(i): expected for i in range(NUM_SITES)}
    print(f"stock Flower test wall time: {elapsed:.1f}s")
