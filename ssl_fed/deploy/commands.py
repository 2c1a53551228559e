"""Deployment subcommands of ``ssl-fed``: thin wrappers over Flower's binaries and ssl-fed's PKI.

``pki init`` / ``site keygen`` make the keys (:mod:`ssl_fed.deploy.pki`); ``server enroll``
wraps ``flwr supernode register``; ``server start`` runs ``flower-superlink`` (TLS, node
authentication, a persistent 0600 state DB) bound to 127.0.0.1 only, with the Fleet-only gateway
(:mod:`ssl_fed.deploy.gateway`) on the public address; ``site start`` runs
:mod:`ssl_fed.deploy.site`; ``run`` wraps ``flwr run . <connection> --stream``; ``export``
lives in :mod:`ssl_fed.serve.commands`.
Each handler returns an exit code; ``ssl_fed.cli`` prints user errors as one ``error:`` line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ssl_fed.deploy.flwr_cli import (
    DEFAULT_CONNECTION,
    DeployError,
    binary,
    flwr_env,
    has_connection,
    require_file,
    stage_app,
    write_connection,
)
from ssl_fed.deploy.run_outcome import run_exit_code, stream_run
from ssl_fed.deploy.site_cli import cmd_site_start, site_start_options

PROJECT_DIR = Path(__file__).resolve().parents[2]
INSECURE_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: --insecure: NO TLS and NO node authentication.                      !!
!! Anyone who can reach this port can join as a site or read the traffic.       !!
!! Use only on a closed test network, never with real site data.                !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def cmd_pki_init(args: argparse.Namespace) -> int:
    """Create the CA and the SuperLink's certificate."""
    from ssl_fed.deploy.pki import init_pki

    paths = init_pki(args.out, args.host or ["127.0.0.1", "localhost"], ca_dir=args.ca_dir)
    print(f"CA certificate (give to every site): {paths.ca_cert}")
    print(f"server certificate / key (stay on the server): {paths.server_cert} {paths.server_key}")
    print(
        f"CA key: {paths.ca_key}. Move {paths.ca_key.parent} OFFLINE now; `server start` refuses "
        "to run while the CA key sits in its PKI or state folder."
    )
    return 0


def cmd_site_keygen(args: argparse.Namespace) -> int:
    """Create a site's node-authentication key pair."""
    from ssl_fed.deploy.pki import site_keygen
    from ssl_fed.deploy.supernode import site_id_from_key

    private, public = site_keygen(args.out, args.name)
    print(f"private key (never leaves this site): {private}")
    print(f"site id (reported in metrics unless --site-id): {site_id_from_key(public)}")
    print(f"public key (send to the operator for `ssl-fed server enroll`): {public}")
    return 0


def _connection(args: argparse.Namespace) -> str:
    """Write the connection when ``--superlink`` is given; check it exists otherwise."""
    if args.superlink:
        path = write_connection(args.connection, args.superlink, args.ca)
        print(
            f"SuperLink connection {args.connection!r} saved in {path} "
            "(set FLWR_HOME to keep it elsewhere)",
            file=sys.stderr,
        )
    elif not has_connection(args.connection):
        raise DeployError(
            f"no SuperLink connection {args.connection!r} in $FLWR_HOME/config.toml: pass "
            "--superlink HOST:PORT --ca CA.crt once (it is then remembered)"
        )
    return str(args.connection)


def cmd_server_enroll(args: argparse.Namespace) -> int:
    """Register a site's public key with the SuperLink (``flwr supernode register``)."""
    from ssl_fed.deploy.pki import read_public_key

    read_public_key(args.pubkey)
    name = _connection(args)
    cmd = [binary("flwr"), "supernode", "register", str(Path(args.pubkey).resolve()), name]
    return subprocess.call(cmd, env=flwr_env())


def superlink_command(args: argparse.Namespace) -> list[str]:
    """Build the ``flower-superlink`` command line: loopback only, on ``--control-port``."""
    state = Path(args.state_dir).resolve()
    cmd = [
        binary("flower-superlink"),
        "--host",
        "127.0.0.1",
        "--port",
        str(args.control_port),
        "--database",
        str(state / "superlink.db"),
        "--disable-runtime-dependency-installation",
    ]
    if args.insecure:
        return [*cmd, "--insecure"]
    ca, cert, key = tls_files(args)
    return [
        *cmd,
        *("--ssl-ca-certfile", str(ca), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
        "--enable-supernode-auth",
    ]


def tls_files(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """Return (CA cert, server cert, server key) from ``--pki``, or a clear error."""
    if not args.pki:
        raise DeployError("--pki DIR (from `ssl-fed pki init`) is required, or pass --insecure")
    pki = Path(args.pki)
    return (
        require_file(pki / "ca.crt", "--pki"),
        require_file(pki / "server.pem", "--pki"),
        require_file(pki / "server.key", "--pki"),
    )


def prepare_state(args: argparse.Namespace) -> Path:
    """Refuse to start beside the CA key; create the state dir 0700 and ``superlink.db`` 0600.

    The process umask becomes 077, so the SQLite journal files, FLWR_HOME and run outputs the
    SuperLink and its ServerApps write under the state dir are private to the operator too.
    """
    from ssl_fed.deploy.pki import find_ca_key

    state = Path(args.state_dir).resolve()
    if not args.insecure:
        ca_cert = tls_files(args)[0]
        found = find_ca_key([Path(args.pki).resolve(), state], ca_cert)
        if found is not None:
            raise DeployError(
                f"{found} is the CA's private key, in a folder the server reads; move it "
                "offline (it is needed only to issue certificates), then start again"
            )
    os.umask(0o077)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.chmod(0o700)
    db = state / "superlink.db"
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
    db.chmod(0o600)
    return state


def cmd_server_start(args: argparse.Namespace) -> int:
    """Run the SuperLink on loopback and the Fleet-only gateway on ``--host:--port``."""
    from ssl_fed.deploy.gateway import serve_gateway

    if args.control_port == args.port:
        raise DeployError("--control-port must differ from the public --port")
    cmd = superlink_command(args)
    state = prepare_state(args)
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr, flush=True)
    env = flwr_env()
    env.setdefault("FLWR_HOME", str(state / "flwr"))
    link = subprocess.Popen(cmd, env=env, cwd=state)
    scheme = "http" if args.insecure else "https"
    print(
        f"control (operator only): 127.0.0.1:{args.control_port}; "
        f"sites connect to {args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        serve_gateway(
            args.host,
            args.port,
            f"{scheme}://127.0.0.1:{args.control_port}",
            None if args.insecure else tls_files(args),
            lambda: link.poll() is None,
        )
    finally:
        if link.poll() is None:
            link.terminate()
            try:
                link.wait(timeout=15)
            except subprocess.TimeoutExpired:
                link.kill()
    return 0 if link.returncode in (0, -15) else 1


def cmd_run(args: argparse.Namespace) -> int:
    """Submit the app to the SuperLink and stream its logs (``flwr run``).

    Exit code: flwr's own on its failure; 2 when the run completed no round, 3 when its log
    lacks the completion line, 0 when it has it (:mod:`ssl_fed.deploy.run_outcome`).
    ``--detach`` returns once submitted.
    """
    import tempfile

    name = _connection(args)
    with tempfile.TemporaryDirectory(prefix="ssl-fed-app-") as tmp:
        app = stage_app(Path(args.app).resolve(), list(args.overrides), Path(tmp) / "app")
        cmd = [binary("flwr"), "run", str(app), name]
        if args.detach:
            return subprocess.call(cmd, env=flwr_env())
        return run_exit_code(*stream_run([*cmd, "--stream"], flwr_env()))


def _link_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--superlink", help="HOST:PORT of the SuperLink (saved as a connection)")
    p.add_argument("--ca", help="CA certificate that signed the SuperLink's certificate")
    p.add_argument("--connection", default=DEFAULT_CONNECTION, help="connection name")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pki``, ``site``, ``server`` and ``run`` to the ``ssl-fed`` parser."""
    pki = sub.add_parser("pki", help="certificates for TLS").add_subparsers(required=True)
    p = pki.add_parser("init", help="create the CA and the SuperLink certificate")
    p.add_argument("--out", required=True, help="folder for ca.crt/ca.key/server.pem/server.key")
    p.add_argument("--host", action="append", help="DNS name or IP of the server (repeat)")
    p.add_argument("--ca-dir", help="folder for ca.key (default: <out>-ca-offline; move offline)")
    p.set_defaults(func=cmd_pki_init)

    site = sub.add_parser("site", help="run a data-holding site").add_subparsers(required=True)
    p = site.add_parser("keygen", help="create the site's node-authentication key pair")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="site", help="file stem: NAME_key and NAME_key.pub")
    p.set_defaults(func=cmd_site_keygen)
    p = site.add_parser("start", help="validate the data and start the site's SuperNode")
    p.add_argument("--data", required=True, help="folder of PNG/JPEG images, or an .npz")
    p.add_argument("--state-dir", required=True, help="where the site's privacy ledger lives")
    p.add_argument("--superlink", required=True, help="HOST:PORT")
    p.add_argument("--ca", required=True, help="the federation's CA certificate")
    p.add_argument("--key", required=True, help="the site's private key (site keygen)")
    p.add_argument("--policy", help="the site's privacy policy YAML (docs/site-policy.md)")
    p.add_argument(
        "--epsilon-budget",
        type=float,
        help="the site's LIFETIME ε over all runs, never refilled (or in --policy)",
    )
    site_start_options(p)
    p.set_defaults(func=cmd_site_start)

    server = sub.add_parser("server", help="operate the SuperLink").add_subparsers(required=True)
    p = server.add_parser("enroll", help="register a site's public key")
    p.add_argument("pubkey", help="the site's NAME_key.pub")
    _link_args(p)
    p.set_defaults(func=cmd_server_enroll)
    p = server.add_parser("start", help="start flower-superlink with TLS and node auth")
    p.add_argument("--state-dir", default="superlink", help="state DB, FLWR_HOME, run outputs")
    p.add_argument("--host", default="0.0.0.0", help="public address of the Fleet-only gateway")
    p.add_argument("--port", type=int, default=9093, help="public port (sites connect here)")
    p.add_argument(
        "--control-port", type=int, default=9095, help="loopback port of the SuperLink (operator)"
    )
    p.add_argument("--pki", help="folder written by `ssl-fed pki init`")
    p.add_argument("--insecure", action="store_true", help="NO TLS, NO node auth (tests only)")
    p.set_defaults(func=cmd_server_start)

    p = sub.add_parser("run", help="submit a federated run to the SuperLink (flwr run)")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    _link_args(p)
    p.add_argument("--app", default=str(PROJECT_DIR), help="the Flower app (project) folder")
    p.add_argument("--detach", action="store_true", help="submit and return (no --stream)")
    p.set_defaults(func=cmd_run)
