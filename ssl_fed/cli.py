"""The ``ssl-fed`` command line: thin dispatch onto the library; Hydra overrides pass through.

Every user-facing error (bad config value, bad data, a privacy setup that cannot be stated, an
exhausted budget, a corrupt ledger) is printed as one ``error:`` line with its fix and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ssl_fed.config import ConfigError, RootConfig, load_config


def _user_errors() -> tuple[type[Exception], ...]:
    from ssl_fed.data import DataError
    from ssl_fed.deploy.flwr_cli import DeployError
    from ssl_fed.deploy.pki import PkiError
    from ssl_fed.privacy import BudgetExceededError, LedgerError, PrivacyError
    from ssl_fed.train.pretrain import WarmStartError

    errors = (ConfigError, DataError, PrivacyError, BudgetExceededError, LedgerError)
    return (*errors, DeployError, PkiError, WarmStartError)


def cmd_train_local(overrides: list[str]) -> int:
    """Train one site centrally and print a summary."""
    from ssl_fed.train.job import run_train_local

    cfg = load_config(overrides)
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
    ledger = site_ledger(cfg)
    print(f"ledger: {ledger.path} ({len(ledger.entries)} entries)")
    print(f"{'time (UTC)':<20} {'run_id':<32} {'round':>5} {'sigma':>8} {'q':>8} {'steps':>6} sens")
    for e in ledger.entries:
        when = datetime.fromtimestamp(e.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{when:<20} {e.run_id[:32]:<32} {e.round:>5} {e.noise_multiplier:>8.4f} "
            f"{e.sample_rate:>8.4f} {e.steps:>6} {e.sensitivity:g}C"
        )
    spent = ledger.epsilon()
    print(
        f"ε spent: {spent:.4f} at δ={ledger.delta} ({ledger.accountant.upper()} accountant, "
        f"whole history); budget {ledger.budget}; remaining {ledger.remaining():.4f}"
    )
    return 0


def cmd_simulate(overrides: list[str]) -> int:
    """Run a federated simulation of many sites on this machine."""
    try:
        from simulations.run import simulate
    except ImportError as err:
        raise ConfigError(f"the simulation entry point is not available: {err}") from err
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
    "ledger": (cmd_ledger_show, "`ledger show state_dir=DIR`: a site's history and ε spent"),
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
            p.add_argument("action", choices=["show"], help="what to do with the ledger")
        p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    from ssl_fed.deploy.commands import register
    from ssl_fed.serve.commands import register as register_serving

    register(sub)
    register_serving(sub)
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
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
