"""The site policy: a pure check of the server's run config, and the round checks on the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_fed.config import ConfigError, load_config
from ssl_fed.fed.policy import check_round, site_refusals
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.policy import (
    DECLINED_BUDGET,
    REFUSAL_CODES,
    SitePolicy,
    check_run,
    load_policy,
    refusal_code,
    run_sensitivity,
    simulation_policy,
)

DEFAULT = SitePolicy(epsilon_budget=8.0)


def _codes(overrides: list[str], policy: SitePolicy = DEFAULT) -> list[str]:
    return [r.code for r in check_run(load_config(overrides), policy)]


def test_the_default_run_fits_the_default_policy() -> None:
    assert _codes([]) == []


@pytest.mark.parametrize(
    "overrides, code",
    [
        (["privacy=off"], "privacy-off"),
        (["aggregation=plain"], "aggregation"),
        (["aggregation=flower-secaggplus"], "aggregation"),
        (["privacy.target_epsilon=9"], "epsilon"),
        (["privacy.delta=1e-4"], "delta"),
        (["privacy.accountant=prv"], "accountant"),
    ],
)
def test_each_weakening_is_refused(overrides: list[str], code: str) -> None:
    # Prepare: a site whose accountant is RDP only
    policy = SitePolicy(epsilon_budget=8.0, accountants=("rdp",))
    # Execute / Assert
    assert _codes(overrides, policy) == [code]


def test_noise_below_the_minimum_is_refused_and_at_the_minimum_allowed() -> None:
    policy = SitePolicy(epsilon_budget=8.0, min_noise_multiplier=1.0)
    assert _codes(["privacy.noise_multiplier=0.99"], policy) == ["noise"]
    assert _codes(["privacy.noise_multiplier=1.0"], policy) == []


def test_per_run_cap_is_below_the_budget() -> None:
    policy = SitePolicy(epsilon_budget=8.0, max_epsilon_per_run=2.0)
    assert _codes(["privacy.target_epsilon=2.5"], policy) == ["epsilon"]
    assert _codes(["privacy.target_epsilon=2"], policy) == []
    assert policy.run_cap == 2.0


def test_a_sensitivity_the_site_did_not_allow_is_refused() -> None:
    # Prepare: a site that accepts only per-image clipping (sensitivity C)
    policy = SitePolicy(epsilon_budget=8.0, sensitivities=(1.0,))
    # Execute / Assert: group-wise contrastive clipping has sensitivity 2C
    assert _codes(["task=contrastive"], policy) == ["sensitivity"]
    assert _codes(["task=rotation"], policy) == []


def test_privacy_off_is_allowed_only_where_privacy_is_not_required() -> None:
    lax = SitePolicy(epsilon_budget=8.0, require_privacy=False)
    assert _codes(["privacy=off"], lax) == []


@pytest.mark.parametrize("task", ["rotation", "contrastive", "joint"])
def test_run_sensitivity_equals_the_unit_plan(task: str) -> None:
    from ssl_fed.models import build_model
    from ssl_fed.tasks import build_task, plan_units

    cfg = load_config([f"task={task}"])
    model = build_model(cfg.encoder, 1)
    built = build_task(model, cfg.task, cfg.data.augment, cfg.data.image_size, 1)
    assert run_sensitivity(cfg) == plan_units(built, cfg.task, 32).sensitivity


def test_a_simulation_policy_allows_its_own_config() -> None:
    for overrides in ([], ["privacy=off", "aggregation=plain"], ["privacy.accountant=prv"]):
        cfg = load_config(overrides)
        assert check_run(cfg, simulation_policy(cfg)) == []


def test_refusal_codes_are_stable_small_integers() -> None:
    cfg = load_config(["privacy=off", "aggregation=plain"])
    refusals = check_run(cfg, DEFAULT)
    assert refusal_code(refusals) == REFUSAL_CODES["aggregation"] == 5
    assert refusal_code([]) == 0
    assert DECLINED_BUDGET not in REFUSAL_CODES.values()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site-policy.yaml"
    path.write_text(text)
    return path


def test_a_policy_file_is_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "epsilon_budget: 4\ndelta: 1.0e-6\nmax_epsilon_per_run: 2\nmin_noise_multiplier: 0.8\n"
        "aggregations: [secagg]\nsensitivities: [1, 2]\n",
    )
    p = load_policy(path)
    assert (p.epsilon_budget, p.delta, p.run_cap, p.min_noise_multiplier) == (4, 1e-6, 2, 0.8)
    assert p.aggregations == ("secagg",)


@pytest.mark.parametrize(
    "text, field",
    [
        ("epsilon_budget: .inf\n", "epsilon_budget"),
        ("epsilon_budget: .nan\n", "epsilon_budget"),
        ("epsilon_budget: -1\n", "epsilon_budget"),
        ("delta: 1.0e-5\n", "epsilon_budget is missing"),
        ("epsilon_budget: 8\ndelta: 1.5\n", "delta"),
        ("epsilon_budget: 8\nmin_noise_multiplier: .inf\n", "min_noise_multiplier"),
        ("epsilon_budget: 8\naggregations: [plain, magic]\n", "aggregations"),
        ("epsilon_budget: 8\nprivacy_unit: patient\n", "privacy_unit"),
        ("epsilon_budget: 8\ntrusted_apps: [abc]\n", "trusted_apps"),
        ("epsilon_budget: 8\nbudget_override: 99\n", "unknown field"),
        ("epsilon_budget: 8\naggregations: secagg\n", "aggregations must be a list"),
        ("- 1\n- 2\n", "mapping"),
        ("epsilon_budget: [8\n", "cannot read"),
    ],
)
def test_a_bad_policy_file_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_policy(_write(tmp_path, text))


def test_the_budget_flag_and_the_file_must_agree(tmp_path: Path) -> None:
    path = _write(tmp_path, "epsilon_budget: 8\n")
    assert load_policy(path, 8.0).epsilon_budget == 8.0
    with pytest.raises(ConfigError, match="one place"):
        load_policy(path, 9.0)
    assert load_policy(_write(tmp_path, "delta: 1.0e-5\n"), 3.0).epsilon_budget == 3.0


def _rdp_epsilon(steps: list[tuple[float, float, int]], delta: float) -> float:
    """ε of a history with Google's dp-accounting (independent of Opacus)."""
    import dp_accounting

    acc = dp_accounting.rdp.RdpAccountant()
    for sigma, q, n in steps:
        acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), n)
    return float(acc.get_epsilon(delta))


def test_a_run_that_would_pass_its_cap_is_declined(tmp_path: Path) -> None:
    # Prepare: σ fixed at 1.0; 120 images, batch 60 -> q = 0.5, 2 steps x 2 epochs per round
    cfg = load_config(["privacy.noise_multiplier=1.0", "train.batch_size=60"])
    ledger = PrivacyLedger(tmp_path, budget=100.0, delta=1e-5)
    ledger.charge(
        run_id="r", round=1, noise_multiplier=1.0, sample_rate=0.5, steps=4, sensitivity=1.0
    )
    two_rounds = _rdp_epsilon([(1.0, 0.5, 4), (1.0, 0.5, 4)], 1e-5)
    # Execute: a cap just above and just below what two rounds of run r cost
    above = SitePolicy(epsilon_budget=100.0, max_epsilon_per_run=two_rounds * 1.05)
    below = SitePolicy(epsilon_budget=100.0, max_epsilon_per_run=two_rounds * 0.95)
    # Assert: and another run id starts from zero
    assert check_round(cfg, above, ledger, 120, "r") == []
    assert [r.code for r in check_round(cfg, below, ledger, 120, "r")] == ["epsilon-run"]
    assert check_round(cfg, below, ledger, 120, "other") == []


def test_a_calibrated_noise_below_the_minimum_is_declined(tmp_path: Path) -> None:
    # Prepare: a large ε target calibrates a small σ
    cfg = load_config(["privacy.target_epsilon=8", "train.max_rounds=1"])
    ledger = PrivacyLedger(tmp_path, budget=8.0, delta=1e-5)
    strict = SitePolicy(epsilon_budget=8.0, min_noise_multiplier=5.0)
    # Execute / Assert
    assert [r.code for r in check_round(cfg, strict, ledger, 300, "r")] == ["noise"]
    assert check_round(cfg, DEFAULT, ledger, 300, "r") == []


def test_a_refused_run_never_opens_the_ledger(tmp_path: Path) -> None:
    # Prepare: round inputs that would fail if anyone asked for them
    def forbidden() -> tuple[PrivacyLedger | None, int]:
        raise AssertionError("the ledger was opened for a refused run")

    cfg = load_config(["privacy=off"])
    # Execute
    refusals = site_refusals(cfg, cfg, DEFAULT, forbidden, "r")
    # Assert
    assert [r.code for r in refusals] == ["privacy-off"]
    assert list(tmp_path.iterdir()) == []
