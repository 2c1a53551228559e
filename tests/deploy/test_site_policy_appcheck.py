"""A site executes only the app it trusts: the FAB digest is checked before Flower installs it."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flwr.cli.build import build_fab_from_disk
from flwr.supercore.fab import Fab

from ssl_fed.deploy import appcheck
from ssl_fed.deploy.appcheck import AppRefusedError, fab_digest, own_app_digest, verify_fab
from ssl_fed.deploy.flwr_cli import stage_app
from ssl_fed.deploy.site import PROJECT_DIR, supernode_env


@pytest.fixture(scope="module")
def trusted() -> str:
    return own_app_digest(PROJECT_DIR)


def _fab(tmp_path: Path, overrides: list[str], edit: Any = None) -> bytes:
    """Build the FAB ``ssl-fed run`` would send, optionally after editing the staged app."""
    app = stage_app(PROJECT_DIR, overrides, tmp_path / "app")
    if edit is not None:
        edit(app)
    return build_fab_from_disk(app)


def test_the_operators_app_with_another_run_config_is_trusted(tmp_path: Path, trusted: str) -> None:
    # Execute: what `ssl-fed run privacy.target_epsilon=4 sim.rounds=2` submits
    fab = _fab(tmp_path, ["privacy.target_epsilon=4", "sim.rounds=2"])
    # Assert: the run config is not part of the digest (the site policy checks it instead)
    assert verify_fab(fab, hashlib.sha256(fab).hexdigest(), {trusted}) == trusted


def _append(path: str, text: str) -> Any:
    def edit(app: Path) -> None:
        with open(app / path, "a", encoding="utf-8") as fh:
            fh.write(text)

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        _append("client/app.py", "\nimport os  # reads the site's data\n"),
        _append("ssl_fed/fed/guard.py", "\n"),
        _append("pyproject.toml", '\n[tool.flwr.app.extra]\nclientapp = "evil:app"\n'),
    ],
)
def test_an_app_that_differs_is_refused(tmp_path: Path, trusted: str, edit: Any) -> None:
    fab = _fab(tmp_path, [], edit)
    assert fab_digest(fab) != trusted
    with pytest.raises(AppRefusedError, match="not trusted"):
        verify_fab(fab, hashlib.sha256(fab).hexdigest(), {trusted})


def test_a_fab_whose_hash_is_not_its_content_is_refused(tmp_path: Path, trusted: str) -> None:
    fab = _fab(tmp_path, [])
    with pytest.raises(AppRefusedError, match="does not match"):
        verify_fab(fab, "0" * 64, {trusted})
    with pytest.raises(AppRefusedError, match="not a valid archive"):
        verify_fab(b"not a zip", hashlib.sha256(b"not a zip").hexdigest(), {trusted})


def test_the_patched_runtime_never_installs_a_foreign_app(
    tmp_path: Path, trusted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: Flower's ClientApp runtime with a fake SuperNode pull and a spy installer
    import flwr.supernode.runtime.run_clientapp as rc

    foreign = _fab(tmp_path, [], _append("client/app.py", "\n# other code\n"))
    good = _fab(tmp_path / "good", [])
    installed: list[bytes] = []
    task: dict[str, Any] = {}

    def fake_pull(client: Any) -> Any:
        fab = Fab(hashlib.sha256(task["fab"]).hexdigest(), task["fab"], {})
        return "msg", "ctx", SimpleNamespace(fab_hash=fab.hash_str), fab

    monkeypatch.setattr(rc, "pull_task_input", fake_pull)
    monkeypatch.setattr(rc, "install_from_fab", lambda content, **kw: installed.append(content))
    appcheck.patch_runtime({trusted})
    # Execute / Assert: the foreign FAB raises before the installer runs
    task["fab"] = foreign
    _, _, _, fab = rc.pull_task_input(None)
    with pytest.raises(AppRefusedError):
        rc.install_from_fab(fab.content, skip_prompt=True)
    assert installed == []
    # ... and the site's own app is installed
    task["fab"] = good
    _, _, _, fab = rc.pull_task_input(None)
    rc.install_from_fab(fab.content, skip_prompt=True)
    assert installed == [good]


def test_the_supernode_finds_the_verifying_launcher_first(tmp_path: Path, trusted: str) -> None:
    # Execute
    env = supernode_env(tmp_path / "state", (trusted,))
    launcher = shutil.which("flwr-clientapp", path=env["PATH"])
    # Assert: the SuperExec's by-name lookup resolves to ssl-fed's launcher, which runs
    # Flower's flwr-clientapp (its --help) behind the check
    assert launcher == str(tmp_path / "state" / "bin" / "flwr-clientapp")
    assert env[appcheck.TRUSTED_ENV] == trusted
    out = subprocess.run([launcher, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--token" in out.stdout


def test_clientapp_errors_reach_the_sites_log(tmp_path: Path) -> None:
    # Prepare: the launcher's log setup (the SuperExec discards the ClientApp's own output)
    import logging

    path = tmp_path / "clientapp.log"
    appcheck.log_to_site(str(path))
    try:
        # Execute
        logging.getLogger("flwr").error("ClientApp raised AppRefusedError: not trusted")
        logging.getLogger("ssl_fed.fed.guard").error("reply dropped by the guard: ε out of range")
        logging.getLogger("ssl_fed.fed.guard").info("routine detail")
    finally:
        for name in ("flwr", "ssl_fed"):
            for handler in list(logging.getLogger(name).handlers):
                if isinstance(handler, logging.FileHandler):
                    logging.getLogger(name).removeHandler(handler)
                    handler.close()
    # Assert
    text = path.read_text()
    assert "not trusted" in text and "dropped by the guard" in text
    assert "routine detail" not in text
