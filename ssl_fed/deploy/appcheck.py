"""The site runs only the operator's app: every FAB's digest is checked before Flower installs it.

What Flower 1.42 offers, and why it is not enough here
------------------------------------------------------
``flower-supernode --trusted-entities`` verifies a FAB only through the ``verifications`` the
SuperLink attaches, which the open-source SuperLink fills only for apps downloaded from the
Flower platform (signed there, with a ``valid_license`` entry); an app submitted with
``flwr run .`` carries none, so a SuperNode with trusted entities refuses *every* local app
(``start_client_internal._pull_and_store_message``). There is no option that pins a hash.

What ssl-fed does instead
-------------------------
A SuperNode runs each message in a fresh ``flwr-clientapp`` process that it (through
``flower-superexec``) finds *by name on PATH*. ``ssl-fed site start`` puts a launcher of that name
first on the SuperNode's PATH (:func:`install_launcher`); it runs :func:`main`, which is Flower's
own ``flwr-clientapp`` with one change: the FAB pulled from the SuperNode must (1) hash to the
hash the run names and (2) have an :func:`app_digest` in the site's trusted set, else
installation raises :class:`AppRefusedError`, no code of the app is imported, and the server gets
an error reply. The digest covers every file of the FAB and its ``pyproject.toml`` except the run
config table (``[tool.flwr.app.config]``, which the site policy checks instead), so the same code
with another run config has the same digest. By default a site trusts exactly the app it has
installed itself (:func:`own_app_digest`, staged the way ``ssl-fed run`` stages it). The launcher
runs :func:`main` in a process forked from the site's warm zygote when there is one
(:func:`launcher_main`, :mod:`ssl_fed.deploy.zygote`), else in its own process: same check.

Notes
-----
Residual risk: the launcher and the ClientApp run as the site's own OS user, so this defends
against a server (or anyone who submits runs) sending other code, not against a local user who
can already edit the site's files or environment.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
import tomllib
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

TRUSTED_ENV = "SSL_FED_TRUSTED_APPS"
"""Comma-separated app digests the launcher accepts (set by ``ssl-fed site start``)."""

LOG_ENV = "SSL_FED_CLIENTAPP_LOG"
"""File the launcher appends ClientApp warnings and errors to (``<state-dir>/clientapp.log``):
the SuperExec discards a ClientApp's own output, so without it a refused app, a guard drop or a
policy refusal would leave no trace at the site."""

LAUNCHER_NAME = "flwr-clientapp"


class AppRefusedError(RuntimeError):
    """A run's app is not one this site trusts; it is not installed or executed."""


def fab_files(fab: bytes) -> dict[str, bytes]:
    """Return the FAB's members by name (raises :class:`AppRefusedError` if it is no zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(fab)) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise AppRefusedError(f"the run's FAB is not a valid archive ({err})") from None


def _canonical_pyproject(data: bytes) -> bytes:
    """``pyproject.toml`` without the run config (and legacy federations), as sorted JSON."""
    try:
        doc: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise AppRefusedError(f"the run's pyproject.toml is unreadable ({err})") from None
    flwr = doc.get("tool", {}).get("flwr", {})
    flwr.pop("federations", None)
    flwr.get("app", {}).pop("config", None)
    return json.dumps(doc, sort_keys=True).encode()


def app_digest(files: Mapping[str, bytes]) -> str:
    """sha256 over every file (name, length, bytes), the run config left out of pyproject."""
    h = hashlib.sha256()
    for name in sorted(files):
        if name.startswith(".info/"):
            continue
        data = _canonical_pyproject(files[name]) if name == "pyproject.toml" else files[name]
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def fab_digest(fab: bytes) -> str:
    """Return the :func:`app_digest` of a FAB's contents."""
    return app_digest(fab_files(fab))


def own_app_digest(project: Path) -> str:
    """Digest of the app this site has installed, staged and built as ``ssl-fed run`` does."""
    import tempfile

    from flwr.cli.build import build_fab_from_disk

    from ssl_fed.deploy.flwr_cli import stage_app

    with tempfile.TemporaryDirectory(prefix="ssl-fed-own-app-") as tmp:
        staged = stage_app(project, [], Path(tmp) / "app")
        return fab_digest(build_fab_from_disk(staged))


def verify_fab(content: bytes, claimed_hash: str, trusted: Collection[str]) -> str:
    """Return the app digest of ``content`` if this site trusts it; else raise.

    ``claimed_hash`` is the FAB hash the run names (Flower installs and loads the app under it),
    so it must be the sha256 of exactly these bytes.
    """
    actual = hashlib.sha256(content).hexdigest()
    if actual != claimed_hash:
        raise AppRefusedError(f"FAB hash {claimed_hash[:12]} does not match its content")
    digest = fab_digest(content)
    if digest not in trusted:
        raise AppRefusedError(
            f"app digest {digest} is not trusted by this site (docs/site-policy.md, trusted_apps)"
        )
    return digest


def trusted_from_env() -> frozenset[str]:
    """Return the trusted digests ``ssl-fed site start`` put into the environment (empty: none)."""
    return frozenset(d for d in os.environ.get(TRUSTED_ENV, "").split(",") if d)


def install_launcher(bin_dir: Path) -> Path:
    """Write the ``flwr-clientapp`` launcher into ``bin_dir`` (put it first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / LAUNCHER_NAME
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from ssl_fed.deploy.appcheck import launcher_main\n"
        "sys.exit(launcher_main())\n"
    )
    path.chmod(stat.S_IRWXU)
    return path


def patch_runtime(trusted: Collection[str]) -> None:
    """Make Flower's ClientApp runtime verify each FAB before it installs it."""
    import flwr.supernode.runtime.run_clientapp as rc

    pulled: dict[str, Any] = {}
    pull, install = rc.pull_task_input, getattr(rc, "install_from_fab")  # noqa: B009

    def pull_and_keep(client: Any) -> Any:
        message, context, run, fab = pull(client)
        pulled.update(run=run, fab=fab)
        return message, context, run, fab

    def verified_install(fab_file: Any, *args: Any, **kwargs: Any) -> Any:
        run, fab = pulled.get("run"), pulled.get("fab")
        if run is None or fab is None or fab_file is not fab.content:
            raise AppRefusedError("the FAB to install is not the one pulled for this task")
        if fab.hash_str != run.fab_hash:
            raise AppRefusedError("the FAB's hash differs from the run's")
        verify_fab(fab.content, fab.hash_str, trusted)
        return install(fab_file, *args, **kwargs)

    rc.pull_task_input = pull_and_keep
    setattr(rc, "install_from_fab", verified_install)  # noqa: B010


def log_to_site(path: str | None) -> None:
    """Append Flower's and ssl-fed's warnings and errors to ``path`` (nothing if ``None``)."""
    if not path:
        return
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("flwr", "ssl_fed"):
        logging.getLogger(name).addHandler(handler)


def main() -> int:
    """Entry point of the launcher: Flower's ``flwr-clientapp`` behind :func:`patch_runtime`."""
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

    log_to_site(os.environ.get(LOG_ENV))
    patch_runtime(trusted_from_env())
    flwr_clientapp()
    return 0


def launcher_main() -> int:
    """Run :func:`main` in the site's warm zygote if there is one, else here (the launcher)."""
    from ssl_fed.deploy.zygote import launch

    code = launch()
    return main() if code is None else code
