"""Talking to Flower's own command line: SuperLink connections, run configs, binaries.

flwr 1.42 names a SuperLink by a *connection* in ``$FLWR_HOME/config.toml`` (default
``~/.flwr``): ``flwr run . NAME`` and ``flwr supernode register KEY.pub NAME`` both take that
name, not an address. ssl-fed writes one ``[superlink.<name>]`` table (address + the CA that
verifies the SuperLink's certificate) and leaves every other table in the file untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_CONNECTION = "ssl-fed"


class DeployError(RuntimeError):
    """A deployment step cannot proceed; the message names the file or flag and the fix."""


def flwr_home() -> Path:
    """Return ``$FLWR_HOME`` (Flower's default ``~/.flwr`` when unset)."""
    return Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr"))


def binary(name: str) -> str:
    """Find one of Flower's executables next to this Python first, then on ``PATH``."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise DeployError(f"`{name}` not found; install flwr 1.42 (pip install 'flwr[simulation]')")
    return found


def flwr_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment whose ``PATH`` finds Flower's helper binaries.

    The SuperLink and SuperNode spawn ``flower-superexec``, ``flwr-serverapp`` and
    ``flwr-clientapp`` by name, so this Python's ``bin/`` must come first on ``PATH``.
    """
    env = dict(os.environ if base is None else base)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH")) if p)
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    return env


def check_address(address: str, flag: str = "--superlink") -> str:
    """Validate ``HOST:PORT``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeployError(f"{flag} {address!r}: use HOST:PORT, e.g. 127.0.0.1:9093")
    return address


def require_file(path: str | Path, flag: str) -> Path:
    """Return ``path`` as an absolute path if it is a readable file, else a clear error."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise DeployError(f"{flag} {path}: no such file")
    return p


def write_connection(
    name: str, address: str, ca: str | Path | None, *, insecure: bool = False
) -> Path:
    """Write (or replace) ``[superlink.<name>]`` in ``$FLWR_HOME/config.toml``; return the path."""
    check_address(address)
    path = flwr_home() / "config.toml"
    data: dict[str, Any] = tomllib.loads(path.read_text()) if path.is_file() else {}
    links = data.setdefault("superlink", {})
    entry: dict[str, Any] = {"address": address}
    if insecure:
        entry["insecure"] = True
    elif ca is None:
        raise DeployError("--ca CA.crt is required for a TLS connection (or pass --insecure)")
    else:
        entry["root-certificates"] = str(require_file(ca, "--ca"))
    links[name] = entry
    links.setdefault("default", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return path


def has_connection(name: str) -> bool:
    """Whether ``$FLWR_HOME/config.toml`` defines ``[superlink.<name>]``."""
    path = flwr_home() / "config.toml"
    if not path.is_file():
        return False
    return isinstance(tomllib.loads(path.read_text()).get("superlink", {}).get(name), dict)


APP_PARTS = ("server", "client", "ssl_fed", "configs")


def run_overrides(overrides: list[str]) -> list[str]:
    """Check ``key=value`` overrides and add what a deployed run implies (no progress bars).

    σ is planned for every round a site may join by the sites themselves
    (:func:`~ssl_fed.privacy.engine.plan_federated_trainings`), not here.
    """
    keys = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DeployError(f"override {item!r}: use key=value, e.g. sim.rounds=4")
        keys[key.lstrip("+")] = value
    extra = []
    if "train.progress" not in keys:
        extra.append("train.progress=false")
    return [*overrides, *extra]


def stage_app(project: Path, overrides: list[str], dest: Path) -> Path:
    """Copy the Flower app to ``dest`` with the overrides written into its run config.

    flwr 1.42 rejects a ``--run-config`` key that ``[tool.flwr.app.config]`` does not declare
    ("Invalid run configuration"), and that table lists only a few keys. Composing here (with
    the same loader and validation as every other entry point) fails on a bad value before
    anything is submitted; writing the app's own keys plus every overridden key (as composed)
    into the staged app's table makes any override possible, and every other key keeps its
    default from ``configs/`` on the server (:func:`ssl_fed.fed.runconfig.from_run_config`).
    """
    import shutil

    from ssl_fed.config import load_config
    from ssl_fed.fed.runconfig import to_run_config

    cfg = load_config(run_overrides(overrides))
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        raise DeployError(f"--app {project}: no pyproject.toml (use the ssl-fed source tree)")
    data = tomllib.loads(pyproject.read_text())
    data.setdefault("tool", {}).setdefault("flwr", {}).setdefault("app", {})
    app_cfg = data["tool"]["flwr"]["app"]
    flat = to_run_config(cfg)
    keys = set(app_cfg.get("config", {})) | {
        o.partition("=")[0].lstrip("+") for o in run_overrides(overrides)
    }
    groups = {k: v for k, v in (o.partition("=")[::2] for o in overrides) if "." not in k}
    app_cfg["config"] = {k: flat[k] for k in sorted(keys) if k in flat} | {
        k: v
        for k, v in groups.items()
        if k not in flat  # config-group choices, e.g. aggregation
    }
    data["tool"]["flwr"].pop("federations", None)
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in APP_PARTS:
        if (project / part).is_dir():
            shutil.copytree(project / part, dest / part, ignore=ignore, dirs_exist_ok=True)
    (dest / "pyproject.toml").write_text(tomli_w.dumps(data))
    return dest
