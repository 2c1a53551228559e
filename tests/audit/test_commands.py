"""`ssl-fed audit`: bad input exits 2 with one error line; a violation exits 3."""

import ssl_fed.audit.report as report
from ssl_fed.audit.commands import EXIT_VIOLATION
from ssl_fed.cli import main


def test_an_audit_of_a_non_private_run_is_refused(tmp_path, capsys):
    # Execute
    code = main(["audit", "privacy=off", f"out={tmp_path}"])

    # Assert: one error line naming the fix, nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "privacy=dpsgd" in err[0]
    assert not (tmp_path / "metrics.json").exists()


def test_too_few_canaries_are_refused(tmp_path, capsys):
    assert main(["audit", "--canaries", "3", f"out={tmp_path}"]) == 2
    assert "--canaries" in capsys.readouterr().err


def fake_run_audit(lower):
    def run(cfg, *, kind, canaries, beta, mode="local"):
        metrics = {
            "kind": kind,
            "task": cfg.task.name,
            "epsilon": 1.0,
            "epsilon_lower": lower,
            "epsilon_ceiling": 5.0,
            "confidence": 1 - beta,
            "delta": 1e-5,
            "violation": lower > 1.0,
            "audit": {"correct": 10, "guesses": 10, "canaries": canaries},
        }
        return metrics

    return run


def test_a_violation_exits_non_zero(tmp_path, capsys, monkeypatch):
    # Prepare: an audit outcome above the ledger's ε
    monkeypatch.setattr(report, "run_audit", fake_run_audit(2.5))

    # Execute
    code = main(["audit", "--canaries", "100", f"out={tmp_path}"])

    # Assert
    assert code == EXIT_VIOLATION == 3
    assert "PRIVACY VIOLATION" in capsys.readouterr().out


def test_a_consistent_audit_exits_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "run_audit", fake_run_audit(0.4))
    assert main(["audit", f"out={tmp_path}"]) == 0
    assert "ε_lower=0.400" in capsys.readouterr().out


def test_distributed_noise_is_audited_in_simulation_mode_only(tmp_path, capsys):
    # Execute: a one-site audit of a distributed-noise configuration
    code = main(["audit", "privacy.noise=distributed", "data.public_size=256", f"out={tmp_path}"])

    # Assert: refused with the fix, nothing written
    assert code == 2 and "--mode simulation" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_simulation_mode_reaches_the_simulation_audit(tmp_path, capsys, monkeypatch):
    # Prepare: record the mode the CLI hands to the audit
    seen = {}

    def run(cfg, *, kind, canaries, beta, mode="local"):
        seen["mode"] = mode
        return fake_run_audit(0.1)(cfg, kind=kind, canaries=canaries, beta=beta)

    monkeypatch.setattr(report, "run_audit", run)

    # Execute
    code = main(["audit", "--mode", "simulation", f"out={tmp_path}"])

    # Assert
    assert code == 0 and seen == {"mode": "simulation"}
