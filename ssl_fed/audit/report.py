"""The ``audit`` job: load the site, run one audited training, write metrics.json and audit.md.

ε, ε_lower and the ceiling also go to TensorBoard under ``<out>/tb``, with the f-DP estimate
``epsilon_fdp_gaussian`` (:mod:`ssl_fed.audit.fdp`; an estimate beside ε_lower, never the
violation test) and its ceiling.

Data, model, warm start and ledger come from the same functions ``train-local`` uses
(:mod:`ssl_fed.train.job`), so the audit exercises the configuration a site would train with.
Both files are written atomically at the end; a failed audit never clobbers earlier results.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ssl_fed.audit.run import AUDITS, AuditResult
from ssl_fed.config import ConfigError, RootConfig
from ssl_fed.data import load_splits
from ssl_fed.models import build_model
from ssl_fed.tasks import build_task
from ssl_fed.train.job import load_init, site_ledger, write_atomic


def audit_metrics(result: AuditResult, cfg: RootConfig, run_id: str) -> dict[str, Any]:
    """Return the JSON record of one audit: ε_lower beside the ledger's ε, and how."""
    return {
        "run_id": run_id,
        "kind": result.kind,
        "task": cfg.task.name,
        "privacy_unit": cfg.privacy.unit,
        "epsilon": result.epsilon,
        "epsilon_lower": result.outcome.epsilon_lower,
        "epsilon_ceiling": result.outcome.ceiling,
        "mu_fdp_gaussian": result.outcome.mu_fdp_gaussian,
        "epsilon_fdp_gaussian": result.outcome.epsilon_fdp_gaussian,
        "epsilon_fdp_ceiling": result.outcome.epsilon_fdp_ceiling,
        "violation": result.violation,
        "can_detect_violation": result.outcome.ceiling > result.epsilon,
        "delta": cfg.privacy.delta,
        "confidence": result.outcome.confidence,
        "noise_multiplier": result.noise_multiplier,
        "sample_rate": result.sample_rate,
        "steps": result.steps,
        "sensitivity": result.sensitivity,
        "measured_sensitivity": result.measured_sensitivity,
        "sensitivity_violation": result.sensitivity_violation,
        "audit": result.outcome.to_dict(),
        "config": {"task": asdict(cfg.task), "privacy": asdict(cfg.privacy)},
    }


def audit_markdown(metrics: dict[str, Any]) -> str:
    """Render a short human-readable report of one audit."""
    audit = metrics["audit"]
    verdict = (
        "**VIOLATION**: the audit proves more leakage than the accountant allows (privacy bug)"
        if metrics["violation"]
        else "consistent: ε_lower ≤ ε and the measured sensitivity ≤ the declared one"
    )
    return "\n".join(
        [
            f"# Privacy audit ({metrics['kind']}, task {metrics['task']})",
            "",
            f"- accountant (site ledger): ε = {metrics['epsilon']:.3f} at δ = {metrics['delta']}",
            f"- audit: ε_lower = {metrics['epsilon_lower']:.3f} at confidence "
            f"{metrics['confidence']:.2f} ({audit['correct']} of {audit['guesses']} guesses "
            f"correct, {audit['canaries']} canaries, {audit['included']} included)",
            f"- ceiling with {audit['canaries']} canaries: {metrics['epsilon_ceiling']:.3f}",
            *fdp_lines(metrics),
            f"- mechanism: σ = {metrics['noise_multiplier']:.4f}, "
            f"q = {metrics['sample_rate']:.4f}, "
            f"{metrics['steps']} steps, sensitivity {metrics['sensitivity']:g}C",
            f"- privacy unit: {metrics.get('privacy_unit', 'image')} (ε and ε_lower are per unit)",
            *(
                [
                    f"- adversary: the server's view of each round's SecAgg aggregate "
                    f"({metrics['sites']} sites, {metrics['rounds']} rounds, canaries at site "
                    f"{metrics['canary_site']}; ε is that site's ledger's)"
                ]
                if metrics.get("mode") == "simulation"
                else []
            ),
            f"- sensitivity probe: one real {metrics.get('privacy_unit', 'image')} changed its "
            "unit's clipped gradient by up to "
            f"{metrics['measured_sensitivity']:.3f}C (declared {metrics['sensitivity']:g}C"
            f"{'; EXCEEDED' if metrics['sensitivity_violation'] else ''})",
            f"- verdict: {verdict}",
            *(
                []
                if metrics["can_detect_violation"]
                else [
                    f"- warning: ε = {metrics['epsilon']:.3f} is above what {audit['canaries']} "
                    "canaries can ever prove (the ceiling), so this audit cannot flag a bug at "
                    "this ε; audit a smaller ε (or more canaries) to test the mechanism"
                ]
            ),
            "",
            "Method: Steinke, Nasr & Jagielski, arXiv 2305.08846 (one run, Theorem 5.2).",
            "",
        ]
    )


def fdp_lines(metrics: dict[str, Any]) -> list[str]:
    """Return the f-DP estimate's report line (none for metrics written before it existed)."""
    if "epsilon_fdp_gaussian" not in metrics:
        return []
    return [
        f"- f-DP estimate (arXiv 2410.22235): not μ-GDP for μ < {metrics['mu_fdp_gaussian']:.3f}"
        f", i.e. ε_fdp = {metrics['epsilon_fdp_gaussian']:.3f} at δ = {metrics['delta']} "
        f"(ceiling {metrics['epsilon_fdp_ceiling']:.3f}); an estimate for a Gaussian-shaped "
        "mechanism, not a bound on (ε, δ), so it never sets the verdict"
    ]


def log_tensorboard(metrics: dict[str, Any], out: Path) -> None:
    """Write ε, ε_lower, the ceiling and the f-DP estimate under ``<out>/tb`` (``audit/...``)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    keys = ("epsilon", "epsilon_lower", "epsilon_ceiling", "epsilon_fdp_gaussian")
    for key in (k for k in (*keys, "epsilon_fdp_ceiling") if k in metrics):
        writer.add_scalar(f"audit/{metrics['kind']}/{key}", metrics[key], 0)
    writer.close()


def _audit(
    cfg: RootConfig, *, kind: str, canaries: int, beta: float, mode: str, run_id: str
) -> AuditResult:
    """Run the audit ``mode`` asks for (the site's state under ``out`` in simulation mode)."""
    if mode == "simulation":
        from ssl_fed.audit.simulation import audit_simulation

        out = Path(cfg.out)
        return audit_simulation(
            cfg, kind=kind, canaries=canaries, beta=beta, out=out, run_id=run_id
        )
    if mode != "local":
        raise ConfigError(f"unknown audit mode {mode!r}; valid: local, simulation")
    if cfg.privacy.noise == "distributed":
        raise ConfigError(
            "privacy.noise=distributed adds its noise in the SecAgg sum of several sites; audit "
            "it with --mode simulation"
        )
    splits = load_splits(cfg.data)
    model = build_model(cfg.encoder, splits.train.channels)
    load_init(model, cfg.init)
    task = build_task(
        model, cfg.task, cfg.data.augment, splits.train.image_size, splits.train.channels
    )
    ledger = site_ledger(cfg)
    return AUDITS[kind](
        task, splits.train, cfg, ledger=ledger, run_id=run_id, canaries=canaries, beta=beta
    )


def run_audit(
    cfg: RootConfig, *, kind: str, canaries: int, beta: float, mode: str = "local"
) -> dict[str, Any]:
    """Audit one site's training (or, ``mode="simulation"``, a federation's aggregates).

    Writes ``metrics.json`` and ``audit.md`` under ``cfg.out``.
    """
    if kind not in AUDITS:
        raise ConfigError(f"unknown audit kind {kind!r}; valid: {sorted(AUDITS)}")
    if canaries < 10:
        raise ConfigError(f"--canaries {canaries} is too few to bound anything; use >= 100")
    if not 0.0 < beta < 1.0:
        raise ConfigError(f"--confidence must lie in (0, 1); got {1.0 - beta}")
    if not cfg.privacy.enabled:
        raise ConfigError("the audit tests a DP training: use privacy=dpsgd (not privacy=off)")
    run_id = cfg.run_id or f"audit-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out = Path(cfg.out)
    start = time.time()
    result = _audit(cfg, kind=kind, canaries=canaries, beta=beta, mode=mode, run_id=run_id)
    metrics = audit_metrics(result, cfg, run_id)
    metrics["mode"] = mode
    if mode == "simulation":
        metrics |= {"sites": cfg.sim.num_sites, "rounds": cfg.sim.rounds, "canary_site": 0}
    metrics["wall_time_s"] = round(time.time() - start, 2)
    write_atomic(out / "audit.md", audit_markdown(metrics).encode())
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    log_tensorboard(metrics, out)
    return metrics
