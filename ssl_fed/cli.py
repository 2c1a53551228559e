"""The ``ssl-fed`` command line: thin dispatch onto the library; Hydra overrides pass through.

Every user-facing error (bad config value, bad data, a privacy setup that cannot be stated, an
exhausted budget, a corrupt ledger, a path the file system refuses) is printed as one ``error:``
line with its fix and exits 2; nothing is written before the inputs are checked (``out=`` too:
:func:`~ssl_fed.config.validate_output`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget, load_config, validate_output


def _user_errors() -> tuple[type[Exception], ...]:
    from ssl_fed.data import DataError
    from ssl_fed.deploy.appcheck import AppRefusedError
    from ssl_fed.deploy.flwr_cli import DeployError
    from ssl_fed.deploy.pki import PkiError
    from ssl_fed.privacy import BudgetExceededError, LedgerError, PrivacyError
    from ssl_fed.train.pretrain import WarmStartError

    errors = (ConfigError, DataError, PrivacyError, BudgetExceededError, LedgerError)
    return (*errors, DeployError, PkiError, WarmStartError, AppRefusedError)


def cmd_train_local(overrides: list[str]) -> int:
    """Train one site centrally and print a summary."""
    from ssl_fed.train.job import run_train_local

    cfg = load_config(overrides)
    validate_output(cfg)
    metrics = run_train_local(cfg)
    probe = metrics["linear_probe"]
    print(f"task={metrics['task']} examples={metrics['examples']} steps={metrics['steps']}")
    print("losses: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics["losses"].items()))
    if metrics["epsilon"] is None:
        print("privacy: off (no ε guarantee)")
    else:
        print(
            f"privacy: ε={metrics['epsilon']:.3f} at δ={metrics['delta']} "
            f"(σ={metrics['noise_multiplier']:.3f}, unit: {metrics['privacy_unit']})"
        )
    if probe is not None:
        print(
            "linear probe (labels/class): " + ", ".join(f"{k}: {v:.3f}" for k, v in probe.items())
        )
        print(f"kNN accuracy: {metrics['knn_accuracy']:.3f}")
    print(f"wrote {cfg.out}/metrics.json and {cfg.out}/encoder.pt")
    return 0


def cmd_pretrain_synthetic(overrides: list[str]) -> int:
    """Pretrain an encoder on generated images (no site data, no budget) and save it."""
    from ssl_fed.train.pretrain import pretrain_synthetic, save_warm_start

    cfg = load_config(overrides, config_name="pretrain")
    validate_output(cfg)
    pt = cfg.pretrain
    model, card = pretrain_synthetic(
        cfg, family=pt.family, num_images=pt.num_images, epochs=pt.epochs
    )
    path = save_warm_start(model, card, cfg.out)
    print(f"warm start ({pt.family}, {pt.num_images} images, {pt.epochs} epochs) -> {path}")
    print("no site data used; no site privacy budget consumed (ε = 0 for every site)")
    print(f"use it with: ssl-fed simulate init={path}  (or train-local init={path})")
    return 0


def cmd_ledger_show(overrides: list[str]) -> int:
    """Print a site's privacy ledger and the ε it has spent."""
    from ssl_fed.train.job import site_ledger

    cfg: RootConfig = load_config(overrides)
    if not cfg.state_dir:
        raise ConfigError("state_dir is missing: use `ssl-fed ledger show state_dir=DIR`")
    ledger = site_ledger(cfg, read_only=True)
    print(f"ledger: {ledger.path} ({len(ledger.entries)} entries)")
    print(f"{'time (UTC)':<20} {'run_id':<32} {'round':>5} {'sigma':>8} {'q':>8} {'steps':>6} sens")
    for e in ledger.entries:
        when = datetime.fromtimestamp(e.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{when:<20} {e.run_id[:32]:<32} {e.round:>5} {e.noise_multiplier:>8.4f} "
            f"{e.sample_rate:>8.4f} {e.steps:>6} {e.sensitivity:g}C"
        )
    if ledger.releases:
        print(f"releases ({len(ledger.releases)}; pure ε-DP, added by basic composition):")
        print(f"{'time (UTC)':<20} {'run_id':<32} {'round':>5} {'epsilon':>8} mechanism")
        for r in ledger.releases:
            when = datetime.fromtimestamp(r.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{when:<20} {r.run_id[:32]:<32} {r.round:>5} {r.epsilon:>8.4f} {r.mechanism}")
    spent = ledger.epsilon()
    print(
        f"ε spent: {spent:.4f} at δ={ledger.delta} ({ledger.accountant.upper()} accountant, "
        f"whole history); budget {ledger.budget}; remaining {ledger.remaining():.4f}"
    )
    return 0


def cmd_ledger_verify(overrides: list[str]) -> int:
    """Check a ledger's MAC chain, anchor and header; print ok (exit 0) or the fault (exit 2)."""
    from ssl_fed.privacy.ledger_check import inspect_ledger, verify_report

    cfg: RootConfig = load_config(overrides)
    if not cfg.state_dir:
        raise ConfigError("state_dir is missing: use `ssl-fed ledger verify state_dir=DIR`")
    found = inspect_ledger(cfg.state_dir, cfg.privacy.key_dir)
    print("\n".join(verify_report(found, cfg.privacy.accountant)))
    return 0 if found.problem is None else 2


def cmd_ledger_migrate(overrides: list[str]) -> int:
    """Rewrite an old-format (unkeyed) ledger as a keyed, chained one with its budget."""
    from ssl_fed.privacy.ledger_migrate import migrate_legacy

    cfg: RootConfig = load_config(overrides)
    if not cfg.state_dir:
        raise ConfigError("state_dir is missing: use `ssl-fed ledger migrate state_dir=DIR`")
    pr = cfg.privacy
    ledger = migrate_legacy(
        cfg.state_dir, budget=epsilon_budget(pr), delta=pr.delta, key_dir=pr.key_dir
    )
    print(f"migrated {len(ledger)} entries; budget {ledger.budget}; ε {ledger.epsilon():.4f}")
    return 0


LEDGER_ACTIONS = {
    "show": cmd_ledger_show,
    "verify": cmd_ledger_verify,
    "migrate": cmd_ledger_migrate,
}


def cmd_simulate(overrides: list[str]) -> int:
    """Run a federated simulation of many sites on this machine."""
    try:
        from ssl_fed.fed.simulation import simulate
    except ImportError as err:
        raise ConfigError(f"the simulation entry point is not available: {err}") from err
    validate_output(load_config(overrides))
    metrics = simulate(overrides)
    print(json.dumps({k: metrics[k] for k in ("rounds_completed", "epsilon_max") if k in metrics}))
    return 0


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "train-local": (cmd_train_local, "train one site centrally (non-federated baseline)"),
    "simulate": (cmd_simulate, "simulate a federation of many sites on this machine"),
    "pretrain-synthetic": (
        cmd_pretrain_synthetic,
        "pretrain a warm-start encoder on generated images (no site data, no budget)",
    ),
    "ledger": (
        cmd_ledger_show,
        "`ledger show|verify state_dir=DIR`: a site's history and ε spent, or its integrity",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser; everything after the command is a Hydra override."""
    parser = argparse.ArgumentParser(
        prog="ssl-fed",
        description="Federated self-supervised pretraining under DP-SGD and secure aggregation. "
        "Configure with Hydra overrides, e.g. `ssl-fed train-local task=joint privacy=dpsgd "
        "privacy.target_epsilon=8 out=outputs/run1`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == "ledger":
            p.add_argument("action", choices=list(LEDGER_ACTIONS), help="what to do with it")
            p.set_defaults(func=lambda a: LEDGER_ACTIONS[a.action](list(a.overrides)))
        p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    from ssl_fed.audit import commands as audit_commands
    from ssl_fed.deploy import commands as deploy_commands
    from ssl_fed.monitor import report as monitor_commands
    from ssl_fed.serve import commands as serve_commands

    deploy_commands.register(sub)
    serve_commands.register(sub)
    audit_commands.register(sub)
    monitor_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ssl-fed`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if hasattr(args, "func"):
            return int(args.func(args))
        return COMMANDS[args.command][0](list(args.overrides))
    except _user_errors() as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused a path the user named
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    """Fold a message onto one line (a user error is exactly one ``error:`` line)."""
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
