"""The ``ssl-fed audit`` subcommand: an empirical privacy audit beside the accountant's ε.

``ssl-fed audit [--kind white-box|black-box] [--mode local|simulation] [--canaries M]
[--confidence 0.95] [overrides]`` runs one audited DP training of the configured site, or with
``--mode simulation`` a ``sim.num_sites``-site federation whose server sees only the SecAgg
aggregates (:mod:`ssl_fed.audit.simulation`; ``privacy.noise=distributed`` audits the Skellam
shares) (:mod:`ssl_fed.audit.report`), prints ε and
ε_lower, writes ``metrics.json`` and ``audit.md`` under ``out`` (default ``outputs/audit``, so a
``train-local`` run's files are never overwritten), and exits 3 when ε_lower > ε: the audit then
proves, at the stated confidence, that the training leaks more than its ε says.
"""

from __future__ import annotations

import argparse

MODES = ("local", "simulation")
"""Audit modes: one site's training observed step by step, or a federation's aggregates."""

EXIT_VIOLATION = 3
"""Exit status of an audit that found a privacy violation (2 stays "bad input")."""


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the audit and report; non-zero exit on a violation."""
    from ssl_fed.audit.report import run_audit
    from ssl_fed.config import load_config

    overrides = list(args.overrides)
    if not any(o.split("=", 1)[0].lstrip("+") == "out" for o in overrides):
        overrides.append("out=outputs/audit")
    cfg = load_config(overrides)
    metrics = run_audit(
        cfg, kind=args.kind, canaries=args.canaries, beta=1.0 - args.confidence, mode=args.mode
    )
    audit = metrics["audit"]
    print(
        f"audit ({metrics['kind']}, task={metrics['task']}): "
        f"ε_lower={metrics['epsilon_lower']:.3f} "
        f"at {metrics['confidence']:.0%} confidence ({audit['correct']}/{audit['guesses']} "
        f"correct guesses, {audit['canaries']} canaries; ceiling {metrics['epsilon_ceiling']:.3f})"
    )
    if "epsilon_fdp_gaussian" in metrics:
        print(
            f"f-DP estimate: ε_fdp={metrics['epsilon_fdp_gaussian']:.3f} (μ_lower="
            f"{metrics['mu_fdp_gaussian']:.3f}; ceiling {metrics['epsilon_fdp_ceiling']:.3f}), "
            "reported only: not a bound on (ε, δ)"
        )
    print(f"accountant: ε={metrics['epsilon']:.3f} at δ={metrics['delta']} (site ledger)")
    if not metrics.get("can_detect_violation", True):
        print(
            f"warning: ε={metrics['epsilon']:.3f} is above the ceiling of this audit, which "
            "therefore cannot flag a bug at this ε; audit a smaller ε to test the mechanism"
        )
    print(f"wrote {cfg.out}/metrics.json and {cfg.out}/audit.md")
    if metrics["violation"]:
        why = (
            f"one {metrics.get('privacy_unit', 'image')} changed its unit's clipped gradient by "
            f"{metrics['measured_sensitivity']:.3f}C, above the declared "
            f"{metrics['sensitivity']:g}C"
            if metrics.get("sensitivity_violation")
            else "ε_lower exceeds the accountant's ε"
        )
        print(
            f"PRIVACY VIOLATION: {why}; the mechanism leaks more than it claims. Do not release "
            "models trained with this configuration."
        )
        return EXIT_VIOLATION
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` to the top-level parser's subcommands."""
    text = "empirical privacy audit with canaries: ε_lower beside the accountant's ε"
    p = sub.add_parser("audit", help=text, description=text)
    p.add_argument("--kind", choices=["white-box", "black-box"], default="white-box")
    p.add_argument(
        "--mode",
        choices=list(MODES),
        default="local",
        help="local: one site, every noisy step observed; simulation: sim.num_sites sites, the "
        "server sees each round's SecAgg aggregate (local or distributed noise)",
    )
    p.add_argument("--canaries", type=int, default=1000, help="m, each included w.p. 1/2")
    p.add_argument("--confidence", type=float, default=0.95, help="1 - β of the lower bound")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    p.set_defaults(func=cmd_audit)
