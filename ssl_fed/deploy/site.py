"""``ssl-fed site start``: validate the site's data, start its warm worker, run its SuperNode.

Order matters: the data are loaded and validated with the same loaders training uses *before*
anything connects, so a site with a broken folder fails at its own console (exit 2, a message
naming the file) instead of failing inside a federated round. Then the warm worker
(:mod:`ssl_fed.deploy.worker`) imports the training stack once, the ClientApp zygote
(:mod:`ssl_fed.deploy.zygote`) imports the ClientApp stack once, and ``flower-supernode`` starts
as a child (through :mod:`ssl_fed.fed.fastnode`: a back-off idle poll) with TLS, the site's
node-authentication key and the node config the ClientApp reads:
``data-path``, ``data-format``, ``state-dir`` (the privacy ledger), ``epsilon-budget`` (the site's
own lifetime ε, enforced by its ledger whatever the server's run config says) and
``warm-worker=true``.

The site is sovereign: its privacy policy comes from the operator's ``--policy`` file and/or
``--epsilon-budget`` (:func:`site_policy`, docs/site-policy.md), lives in the warm worker, and is
applied there to every query and training. The SuperNode finds ``flwr-clientapp`` on a PATH whose
first entry is ssl-fed's verifying launcher (:mod:`ssl_fed.deploy.appcheck`), so it runs only an
app whose digest the site trusts: by default exactly the ssl-fed app installed at this site.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ssl_fed.config import ConfigError
from ssl_fed.deploy.flwr_cli import DeployError, check_address, flwr_env, require_file
from ssl_fed.deploy.site_data import data_format, validate_site_data

if TYPE_CHECKING:
    from ssl_fed.privacy.policy import SitePolicy

log = logging.getLogger("ssl_fed.deploy")


@dataclass(frozen=True)
class SiteOptions:
    """Everything ``ssl-fed site start`` needs (see ``ssl-fed site start --help``)."""

    data: Path
    state_dir: Path
    superlink: str
    ca: Path
    key: Path
    epsilon_budget: float | None = None
    port: int | None = None
    data_format: str | None = None
    image_size: int = 8
    site_id: int | None = None
    policy: Path | None = None
    public_size: int | None = None
    eval_fraction: float | None = None
    on_bad_file: str = "error"
    roster: Path | None = None


SUPEREXEC_POLL_ENV = "FLWR_SUPEREXEC_TASK_POLL_INTERVAL"
SUPEREXEC_POLL_S = 0.2
"""How often the SuperNode's ``flower-superexec`` asks for a task to launch (Flower's documented
variable; its default, 1 s, is paid on every message). An operator's own value is kept."""

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The ssl-fed source tree this site runs (its app is the one the site trusts by default)."""


def site_policy(opts: SiteOptions) -> SitePolicy:
    """Return the operator's policy: the ``--policy`` file, else defaults with ``--epsilon-budget``.

    Raises
    ------
    ConfigError
        Naming the flag or the file's field (the CLI prints it and exits 2, before connecting).
    """
    from ssl_fed.privacy.policy import SitePolicy, load_policy

    if opts.policy is not None:
        return load_policy(require_file(opts.policy, "--policy"), opts.epsilon_budget)
    if opts.epsilon_budget is None:
        raise ConfigError("give --policy FILE (docs/site-policy.md) or --epsilon-budget EPS")
    try:
        return SitePolicy(epsilon_budget=opts.epsilon_budget)
    except ConfigError as err:
        raise ConfigError(f"--epsilon-budget {opts.epsilon_budget}: {err}") from None


def node_config(opts: SiteOptions, policy: SitePolicy) -> dict[str, str | int | float | bool]:
    """Return the node config the ClientApp reads (see :func:`ssl_fed.site.node.site_info`)."""
    cfg: dict[str, str | int | float | bool] = {
        "data-path": str(opts.data),
        "data-format": data_format(opts.data, opts.data_format),
        "state-dir": str(opts.state_dir),
        "epsilon-budget": float(policy.epsilon_budget),
        "warm-worker": True,
    }
    cfg["key-dir"] = str(opts.key.parent)
    if opts.roster is not None:
        cfg["roster-dir"] = str(opts.roster)
        cfg["identity-key"] = str(opts.key)
    if opts.site_id is not None:
        cfg["site-id"] = opts.site_id
    if opts.public_size is not None:
        cfg["public-size"] = opts.public_size
    if opts.eval_fraction is not None:
        cfg["eval-fraction"] = opts.eval_fraction
    if opts.on_bad_file != "error":
        cfg["on-bad-file"] = opts.on_bad_file
    if policy.max_noise_multiplier is not None:
        cfg["max-noise-multiplier"] = float(policy.max_noise_multiplier)
    return cfg


def node_config_string(cfg: dict[str, str | int | float | bool]) -> str:
    """Render a node config for ``--node-config`` (TOML-style ``k=v`` pairs)."""
    parts = []
    for key, value in cfg.items():
        if isinstance(value, bool):
            parts.append(f"{key}={str(value).lower()}")
        elif isinstance(value, str):
            parts.append(f'{key}="{value}"')
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def supernode_command(opts: SiteOptions, policy: SitePolicy) -> list[str]:
    """Build the SuperNode command line: TLS, node auth, the node config.

    It runs Flower's ``flower-supernode`` through :mod:`ssl_fed.fed.fastnode` (same arguments;
    a back-off idle poll instead of the fixed 3 s one).
    """
    return [
        sys.executable,
        "-m",
        "ssl_fed.fed.fastnode",
        "--superlink",
        opts.superlink,
        "--root-certificates",
        str(opts.ca),
        "--auth-supernode-private-key",
        str(opts.key),
        "--port",
        str(opts.port if opts.port is not None else 9094),
        "--node-config",
        node_config_string(node_config(opts, policy)),
    ]


def supernode_env(state_dir: Path, trusted: tuple[str, ...]) -> dict[str, str]:
    """Return the SuperNode's environment: the verifying ``flwr-clientapp`` first on PATH."""
    from ssl_fed.deploy.appcheck import LOG_ENV, TRUSTED_ENV, install_launcher
    from ssl_fed.deploy.zygote import ZYGOTE_ENV

    env = flwr_env()
    launcher = install_launcher(state_dir / "bin")
    env["PATH"] = os.pathsep.join([str(launcher.parent), env["PATH"]])
    env[TRUSTED_ENV] = ",".join(trusted)
    app_log = state_dir / "clientapp.log"
    os.close(os.open(app_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    env[LOG_ENV] = str(app_log)
    env.setdefault("FLWR_HOME", str(state_dir / "flwr"))
    env.setdefault(SUPEREXEC_POLL_ENV, str(SUPEREXEC_POLL_S))
    env[ZYGOTE_ENV] = str(state_dir)  # the launcher forks each task from the site's zygote
    return env


def check_roster(roster: Path) -> None:
    """Refuse a ``--roster`` that is not a folder of OpenSSH public keys (``*.pub``)."""
    keys = sorted(roster.glob("*.pub")) if roster.is_dir() else []
    if not keys:
        raise DeployError(
            f"--roster {roster}: give a folder holding every enrolled site's OpenSSH public key "
            "(<name>_key.pub, as exchanged between the site operators, not sent by the server)"
        )


def resolve_paths(opts: SiteOptions) -> SiteOptions:
    """Check the address and flags; make the paths absolute and check the files exist."""
    from ssl_fed.deploy.supernode import SITE_ID_MAX

    check_address(opts.superlink)
    if opts.site_id is not None and not 0 <= opts.site_id <= SITE_ID_MAX:
        raise DeployError(f"--site-id {opts.site_id}: use an integer in 0..{SITE_ID_MAX}")
    if opts.public_size is not None and opts.public_size < 1:
        raise DeployError(f"--public-size {opts.public_size}: declare a size >= 1")
    if opts.roster is not None:
        check_roster(opts.roster)
    return replace(
        opts,
        data=opts.data.expanduser().resolve(),
        state_dir=opts.state_dir.expanduser().resolve(),
        ca=require_file(opts.ca, "--ca"),
        key=require_file(opts.key, "--key"),
        roster=opts.roster.expanduser().resolve() if opts.roster is not None else None,
    )


def resolve_identity(opts: SiteOptions) -> SiteOptions:
    """Fill in the site id (from the key unless ``--site-id``) and the local port.

    The port is a free one unless ``--port`` is given; a given port in use is refused naming it.
    """
    from ssl_fed.deploy.supernode import runtime_port, site_id_from_key

    site_id = opts.site_id if opts.site_id is not None else site_id_from_key(opts.key)
    return replace(opts, site_id=site_id, port=runtime_port(opts.port))


def describe_budget(opts: SiteOptions, policy: SitePolicy) -> str:
    """One line: the site's lifetime ε budget and what its ledger has left (read-only open)."""
    from ssl_fed.privacy.ledger import LEDGER_FILE, PrivacyLedger
    from ssl_fed.privacy.ledger_records import LedgerError

    head = f"lifetime ε budget {policy.epsilon_budget:g} (all runs together, never refilled)"
    if not (opts.state_dir / LEDGER_FILE).exists():
        return f"{head}: nothing spent yet"
    try:
        ledger = PrivacyLedger(opts.state_dir, key_dir=opts.key.parent)
    except LedgerError as err:
        return f"{head}: ledger unreadable ({err})"
    budget = min(ledger.budget, policy.epsilon_budget)
    spent = ledger.epsilon()
    return f"{head}: spent {spent:.3f}, remaining {max(0.0, budget - spent):.3f}"


def start_site(opts: SiteOptions) -> int:
    """Validate, warm up, run the SuperNode until it stops; return a documented exit code."""
    opts = resolve_paths(opts)
    policy = site_policy(opts)
    splits = validate_site_data(opts)
    opts = resolve_identity(opts)
    n_train = len(splits.train)
    n_eval = len(splits.test) if splits.test is not None else 0
    print(f"site data OK: {n_train + n_eval} images in {opts.data}", flush=True)
    if opts.eval_fraction is not None:
        print(
            f"holding out {n_eval} of {n_train + n_eval} images for site-local evaluation",
            flush=True,
        )
    from ssl_fed.deploy.appcheck import own_app_digest

    trusted = policy.trusted_apps or (own_app_digest(PROJECT_DIR),)
    print(f"site policy: {describe_policy(policy)}; trusted app(s): {', '.join(trusted)}")
    print(describe_budget(opts, policy), flush=True)
    size = opts.public_size if opts.public_size is not None else "not declared (ε not reported)"
    print(f"site id {opts.site_id}; public size {size}; local port {opts.port}", flush=True)
    opts.state_dir.mkdir(parents=True, exist_ok=True)

    from ssl_fed.deploy.supernode import SupernodeRunner, start_zygote, stop_group
    from ssl_fed.deploy.worker import SiteWorker, serve

    env = supernode_env(opts.state_dir, trusted)
    zygote = start_zygote(opts.state_dir, env)
    worker = SiteWorker(node_config(opts, policy), policy)
    import ssl_fed.train.local  # noqa: F401  (warm the training stack before the first round)

    serve(worker, opts.state_dir)
    runner = SupernodeRunner(supernode_command(opts, policy), env)

    def forward(signum: int, frame: FrameType | None) -> None:
        runner.stop(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        return runner.run()
    finally:
        stop_group(zygote)


def describe_policy(p: SitePolicy) -> str:
    """One line for the site's console: what this site agrees to."""
    return (
        f"privacy {'required' if p.require_privacy else 'optional'}, ε budget {p.epsilon_budget}, "
        f"≤ {p.run_cap} per run, δ ≤ {p.delta}, σ ≥ {p.min_noise_multiplier}, "
        f"σ ≤ {p.max_noise_multiplier or 'the run config ceiling'} (else declined), "
        f"aggregation {'/'.join(p.aggregations)}"
    )
