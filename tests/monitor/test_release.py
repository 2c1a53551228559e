"""DP release of the drift alarm: mechanisms, ledger charges, budget refusal."""

import json
import math

import numpy as np
import pytest

from ssl_fed.monitor import DriftMonitor, FeatureMap, build_sketch, keep_probability
from ssl_fed.monitor.release import AboveThreshold, RandomizedResponse
from ssl_fed.privacy.ledger import LedgerError, PrivacyLedger


def _ledger(tmp_path, budget: float = 1.0) -> PrivacyLedger:
    return PrivacyLedger(tmp_path / "site", budget=budget, delta=1e-5)


def _charger(ledger: PrivacyLedger):
    calls = iter(range(1, 10_000))
    return lambda eps, mech: ledger.charge_release(
        run_id="sim", round=next(calls), epsilon=eps, mechanism=mech
    )


def test_randomized_response_keeps_the_bit_with_probability_e_eps_over_1_plus_e_eps() -> None:
    # Prepare: eps = ln 3 -> keep 3/4, and the output ratio between bits is exactly e^eps = 3
    eps = math.log(3)
    rr, rng, charges = RandomizedResponse(eps), np.random.default_rng(0), []
    # Execute
    sent = [rr.release(True, rng, lambda e, m: charges.append(e)) for _ in range(20_000)]
    # Assert: 4 binomial SDs around 0.75
    assert keep_probability(eps) == pytest.approx(0.75)
    assert keep_probability(eps) / (1 - keep_probability(eps)) == pytest.approx(math.exp(eps))
    assert abs(np.mean(sent) - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 20_000)
    assert charges == [eps] * 20_000


def test_above_threshold_charges_one_epoch_for_any_number_of_quiet_rounds() -> None:
    # Prepare: statistics far below the threshold (noise scale 4 * 0.001 / 0.5)
    svt, rng, charges = AboveThreshold(0.5, 1.0, 0.001), np.random.default_rng(0), []
    # Execute
    quiet = [svt.release(0.1, rng, lambda e, m: charges.append(e)) for _ in range(50)]
    fired = svt.release(5.0, rng, lambda e, m: charges.append(e))
    after = svt.release(0.1, rng, lambda e, m: charges.append(e))
    # Assert: one epoch paid for 50 zeros; a fire ends it; the next round opens (pays) another
    assert quiet == [0] * 50 and fired == 1 and after == 0
    assert charges == [0.5, 0.5]


def test_dp_alarm_charges_the_ledger_before_release_and_composes_by_sum(tmp_path) -> None:
    # Prepare
    rng = np.random.default_rng(1)
    fmap = FeatureMap(4, num_features=16)
    sketch = build_sketch(fmap, rng.normal(size=(40, 4)), window=10, draws=10)
    ledger = _ledger(tmp_path)
    mon = DriftMonitor(
        sketch, release="dp-alarm", mechanism="rr", epsilon=0.1, charge=_charger(ledger), rng=rng
    )
    # Execute: three rounds
    readings = [mon.observe(r, rng.normal(size=(10, 4))) for r in range(3)]
    reopened = PrivacyLedger(tmp_path / "site", budget=1.0, delta=1e-5)
    # Assert: three chained release records, ε = 0 (no training) + 3 x 0.1
    assert [r.epsilon for r in readings] == [0.1, 0.1, 0.1]
    assert [r.epsilon for r in reopened.releases] == [0.1, 0.1, 0.1]
    assert reopened.epsilon() == pytest.approx(0.3)
    assert all(set(r.outgoing()) == {"drift-alarm"} for r in readings)


def test_spent_budget_releases_nothing(tmp_path) -> None:
    # Prepare: budget for two releases of 0.4
    rng = np.random.default_rng(2)
    sketch = build_sketch(FeatureMap(4), rng.normal(size=(20, 4)), window=5, draws=5)
    ledger = _ledger(tmp_path, budget=0.9)
    mon = DriftMonitor(
        sketch, release="dp-alarm", mechanism="rr", epsilon=0.4, charge=_charger(ledger), rng=rng
    )
    # Execute
    readings = [mon.observe(r, rng.normal(size=(5, 4))) for r in range(3)]
    # Assert: the third is refused and nothing leaves
    assert [r.released is None for r in readings] == [False, False, True]
    assert readings[2].outgoing() == {} and len(ledger.releases) == 2


def test_local_policy_releases_nothing_and_charges_nothing() -> None:
    rng = np.random.default_rng(3)
    sketch = build_sketch(FeatureMap(4), rng.normal(size=(20, 4)), window=5, draws=5)
    reading = DriftMonitor(sketch, release="local").observe(1, rng.normal(size=(5, 4)) + 9)
    assert reading.outgoing() == {} and reading.epsilon == 0.0


def test_an_edited_release_record_is_caught(tmp_path) -> None:
    # Prepare: lower a recorded ε by hand
    ledger = _ledger(tmp_path)
    ledger.charge_release(run_id="r", round=1, epsilon=0.3, mechanism="svt")
    lines = ledger.path.read_text().splitlines()
    record = json.loads(lines[1])
    record["epsilon"] = 0.01
    ledger.path.write_text("\n".join([lines[0], json.dumps(record, sort_keys=True)]) + "\n")
    # Execute / Assert
    with pytest.raises(LedgerError, match="MAC mismatch"):
        PrivacyLedger(tmp_path / "site", budget=1.0, delta=1e-5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"release": "loud"}, "drift_release"),
        ({"mechanism": "gauss"}, "drift_mechanism"),
        ({"epsilon": 0.0}, "drift_alarm_epsilon"),
        ({"release": "dp-alarm"}, "ledger charge"),
    ],
)
def test_bad_monitor_settings_are_refused(kwargs: dict, field: str) -> None:
    sketch = build_sketch(FeatureMap(4), np.eye(4).repeat(2, 0), window=2, draws=2)
    with pytest.raises(ValueError, match=field):
        DriftMonitor(sketch, **kwargs)


def test_the_site_policy_picks_the_monitor_and_charges_its_own_ledger(tmp_path) -> None:
    from ssl_fed.monitor.drift import monitor_for_site
    from ssl_fed.privacy.policy import SitePolicy

    # Prepare
    rng = np.random.default_rng(4)
    sketch = build_sketch(FeatureMap(4), rng.normal(size=(20, 4)), window=5, draws=5)
    ledger = _ledger(tmp_path)
    off = SitePolicy(epsilon_budget=1.0)
    dp = SitePolicy(epsilon_budget=1.0, drift_release="dp-alarm", drift_alarm_epsilon=0.2)
    # Execute
    mon = monitor_for_site(sketch, dp, ledger, "run-7", lambda: 3)
    assert mon is not None
    mon.observe(3, rng.normal(size=(5, 4)))
    # Assert: the default policy builds nothing; dp-alarm charges one SVT epoch at round 3
    assert monitor_for_site(sketch, off, ledger, "run-7", lambda: 3) is None
    assert [(r.run_id, r.round, r.epsilon, r.mechanism) for r in ledger.releases] == [
        ("run-7", 3, 0.2, "svt")
    ]


@pytest.mark.parametrize(
    "field, value",
    [("drift_release", "loud"), ("drift_mechanism", "gauss"), ("drift_alarm_epsilon", "high")],
)
def test_a_site_policy_file_with_a_bad_drift_field_is_refused(tmp_path, field, value) -> None:
    from ssl_fed.config import ConfigError
    from ssl_fed.privacy.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text(f"epsilon_budget: 8\n{field}: {value}\n")
    with pytest.raises(ConfigError, match=field):
        load_policy(path)


def test_ledger_show_lists_release_records_and_counts_them_in_the_total(tmp_path, capsys) -> None:
    # Prepare: a site ledger holding one drift-alarm release and no training
    from ssl_fed.cli import main

    ledger = PrivacyLedger(tmp_path / "state", budget=2.0, delta=1e-5)
    ledger.charge_release(run_id="sim-drift", round=3, epsilon=0.25, mechanism="svt")
    # Execute
    code = main(["ledger", "show", f"state_dir={tmp_path}/state"])
    # Assert: the release is listed and the ε spent is exactly its ε (basic composition)
    out = capsys.readouterr().out
    assert code == 0
    assert "releases (1;" in out and "sim-drift" in out and "svt" in out
    assert "ε spent: 0.2500" in out
