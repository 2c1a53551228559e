"""A site's own privacy policy, and the pure check of a run config against it.

The site is sovereign (DESIGN §1): its operator fixes, when the site starts, the privacy terms
under which it trains (``ssl-fed site start --policy site-policy.yaml``, docs/site-policy.md). A
run config comes from the server; :func:`check_run` compares it with the policy and returns why
it is refused (empty list: allowed). Nothing the server sends can weaken the policy: the policy
is read once from the operator's file and is never merged with the run config.

Notes
-----
Guarantee this module serves: a site that trains only runs for which :func:`check_run` returns
no refusal releases nothing without DP-SGD (``require_privacy``), never with a δ above its own,
never calibrated for more than ``max_epsilon_per_run`` per run, never with an explicit noise
multiplier below ``min_noise_multiplier``, never through an aggregation it did not allow, and
only under a privacy unit and sensitivity its code can state. Checks that need the site's ledger
and data (the calibrated σ, the ε a run has already spent) are in :mod:`ssl_fed.fed.policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ssl_fed.config import ConfigError, RootConfig, epsilon_budget
from ssl_fed.monitor.release import check_release

PRIVACY_UNITS = ("image", "person")
"""Privacy units the code can enforce: one image, or one person (``privacy.unit=person``)."""

ACCOUNTANTS = ("rdp", "prv")

REFUSAL_CODES = {
    "privacy-off": 1,
    "delta": 2,
    "epsilon": 3,
    "noise": 4,
    "aggregation": 5,
    "sensitivity": 6,
    "accountant": 7,
    "epsilon-run": 8,
    "unit": 9,
    "noise-mode": 10,
}
"""Stable small integers for each refusal; the first one found is the code a site sends."""

DECLINED_BUDGET = 20
"""The query's ``declined`` code when the policy allows the run but the ledger cannot afford it."""


@dataclass(frozen=True)
class Refusal:
    """Why a run is refused: a public ``code`` (sent) and a ``detail`` (logged at the site)."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class SitePolicy:
    """The privacy terms a site trains under; see docs/site-policy.md for every field."""

    epsilon_budget: float
    delta: float = 1e-5
    max_epsilon_per_run: float | None = None
    min_noise_multiplier: float = 0.0
    aggregations: tuple[str, ...] = ("secagg",)
    privacy_unit: str = "image"
    sensitivities: tuple[float, ...] = (1.0, 2.0)
    accountants: tuple[str, ...] = ACCOUNTANTS
    require_privacy: bool = True
    trusted_apps: tuple[str, ...] = ()
    drift_release: str = "none"
    drift_mechanism: str = "svt"
    drift_alarm_epsilon: float = 0.25
    noise_modes: tuple[str, ...] = ("local",)
    min_noisy_sites: int = 3
    max_noise_multiplier: float | None = None
    """σ ceiling of this site (``None``: the run config's ``privacy.max_noise_multiplier``)."""

    def __post_init__(self) -> None:
        validate_policy(self)

    @property
    def run_cap(self) -> float:
        """The most ε one run may be calibrated for and spend (never above the lifetime budget)."""
        cap = self.max_epsilon_per_run
        return self.epsilon_budget if cap is None else min(cap, self.epsilon_budget)


def _require_finite_positive(value: object, name: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not float(value) > 0:  # type: ignore[arg-type]
        raise ConfigError(f"site policy {name}={value!r} is invalid: use a finite number > 0")


def validate_policy(p: SitePolicy) -> None:
    """Raise :class:`ConfigError` naming the field unless every value is meaningful."""
    _require_finite_positive(p.epsilon_budget, "epsilon_budget")
    _require_finite_positive(p.delta, "delta")
    if not p.delta < 1:
        raise ConfigError(f"site policy delta={p.delta!r} is invalid: use 0 < δ < 1 (e.g. 1e-5)")
    if p.max_epsilon_per_run is not None:
        _require_finite_positive(p.max_epsilon_per_run, "max_epsilon_per_run")
    if p.min_noise_multiplier != 0:
        _require_finite_positive(p.min_noise_multiplier, "min_noise_multiplier")
    if p.max_noise_multiplier is not None:
        _require_finite_positive(p.max_noise_multiplier, "max_noise_multiplier")
    from ssl_fed.fed.aggregators import names  # the registry; at call time (it imports config)

    bad = [a for a in p.aggregations if a not in names()]
    if bad or not p.aggregations:
        raise ConfigError(
            f"site policy aggregations={list(p.aggregations)} is invalid: list one or more of "
            f"{list(names())} (default: [secagg])"
        )
    if p.privacy_unit not in PRIVACY_UNITS:
        raise ConfigError(
            f"site policy privacy_unit={p.privacy_unit!r} is invalid: the code enforces only "
            f"{list(PRIVACY_UNITS)}"
        )
    for s in p.sensitivities:
        _require_finite_positive(s, "sensitivities")
    if not p.accountants or any(a not in ACCOUNTANTS for a in p.accountants):
        raise ConfigError(f"site policy accountants={list(p.accountants)}: use rdp and/or prv")
    try:
        check_release(p.drift_release, p.drift_mechanism, p.drift_alarm_epsilon)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"site policy {err} (docs/monitoring.md)") from None
    if not p.noise_modes or any(m not in ("local", "distributed") for m in p.noise_modes):
        raise ConfigError(f"site policy noise_modes={list(p.noise_modes)}: use local/distributed")
    if not (isinstance(p.min_noisy_sites, int) and p.min_noisy_sites >= 1):
        raise ConfigError(f"site policy min_noisy_sites={p.min_noisy_sites!r}: use an int >= 1")
    for digest in p.trusted_apps:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(
                f"site policy trusted_apps entry {digest!r} is invalid: use a 64-hex-digit "
                "sha256 app digest (see docs/site-policy.md)"
            )


def load_policy(path: Path, epsilon_budget: float | None = None) -> SitePolicy:
    """Read a site policy YAML file; ``epsilon_budget`` (a flag) may stand in for its field.

    Raises
    ------
    ConfigError
        Naming the file and the field: unreadable file, unknown key, wrong type or value.
    """
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"--policy {path}: cannot read the site policy ({err})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--policy {path}: expected a mapping of field: value")
    names = {f.name for f in fields(SitePolicy)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"--policy {path}: unknown field(s) {unknown}; valid: {sorted(names)}")
    if epsilon_budget is not None:
        if "epsilon_budget" in raw and raw["epsilon_budget"] != epsilon_budget:
            raise ConfigError(
                f"--epsilon-budget {epsilon_budget} disagrees with epsilon_budget="
                f"{raw['epsilon_budget']} in {path}: give the budget in one place"
            )
        raw["epsilon_budget"] = epsilon_budget
    if "epsilon_budget" not in raw:
        raise ConfigError(f"--policy {path}: epsilon_budget is missing (the site's lifetime ε)")
    return policy_from_mapping(raw, str(path))


def policy_from_mapping(raw: dict[str, Any], where: str) -> SitePolicy:
    """Build a :class:`SitePolicy` from plain values, converting lists to tuples."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in {"aggregations", "sensitivities", "accountants", "trusted_apps", "noise_modes"}:
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
            value = tuple(value)
        values[key] = value
    try:
        return SitePolicy(**values)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def simulation_policy(cfg: RootConfig) -> SitePolicy:
    """Return a simulated site's policy: exactly its operator's own config, same checks.

    One operator owns every simulated site, so the run config *is* the site's choice; the
    policy still refuses what no site may do (an unstated sensitivity, an unknown unit).
    """
    pr = cfg.privacy
    return SitePolicy(
        epsilon_budget=epsilon_budget(pr),
        delta=pr.delta,
        max_epsilon_per_run=None,
        aggregations=(cfg.aggregation.name,),
        accountants=(pr.accountant,),
        require_privacy=pr.enabled,
        privacy_unit=pr.unit,
        noise_modes=(pr.noise,),
        min_noisy_sites=1,
        drift_release=cfg.sim.drift_release,
        drift_alarm_epsilon=cfg.sim.drift_alarm_epsilon,
    )


def run_sensitivity(cfg: RootConfig) -> float | None:
    """Return the run's sensitivity in units of C, as :func:`ssl_fed.tasks.plan_units` states it."""
    from ssl_fed.tasks import TASKS

    if not TASKS[cfg.task.name].couples_examples:
        return 1.0
    return 2.0 if cfg.task.negatives == "group" else None


def check_run(cfg: RootConfig, policy: SitePolicy) -> list[Refusal]:
    """Return every way ``cfg`` (from the server) breaks ``policy``; empty means allowed."""
    out: list[Refusal] = []
    a = cfg.aggregation.name
    if a not in policy.aggregations:
        out.append(Refusal("aggregation", f"aggregation={a}; allowed: {list(policy.aggregations)}"))
    pr = cfg.privacy
    if not pr.enabled:
        if policy.require_privacy:
            out.append(Refusal("privacy-off", "privacy.enabled=false; this site requires DP-SGD"))
        return out
    if pr.delta > policy.delta:
        out.append(Refusal("delta", f"privacy.delta={pr.delta} > site δ {policy.delta}"))
    if pr.target_epsilon > policy.run_cap:
        out.append(
            Refusal("epsilon", f"privacy.target_epsilon={pr.target_epsilon} > {policy.run_cap}")
        )
    sigma = pr.noise_multiplier
    if sigma is not None and sigma < policy.min_noise_multiplier:
        out.append(Refusal("noise", f"noise_multiplier={sigma} < {policy.min_noise_multiplier}"))
    sens = run_sensitivity(cfg)
    if sens is None or sens not in policy.sensitivities:
        out.append(
            Refusal("sensitivity", f"sensitivity {sens} C; allowed: {list(policy.sensitivities)}")
        )
    if pr.accountant not in policy.accountants:
        out.append(Refusal("accountant", f"accountant={pr.accountant}"))
    if pr.unit != policy.privacy_unit:
        out.append(Refusal("unit", f"privacy.unit={pr.unit}; site unit {policy.privacy_unit}"))
    out.extend(_noise_refusals(cfg, policy))
    return out


def _noise_refusals(cfg: RootConfig, policy: SitePolicy) -> list[Refusal]:
    """Distributed noise only if the policy accepts it, with at least its own honest-site floor."""
    mode = cfg.privacy.noise
    if mode not in policy.noise_modes:
        return [Refusal("noise-mode", f"privacy.noise={mode}; allowed: {list(policy.noise_modes)}")]
    if mode != "distributed":
        return []
    from ssl_fed.privacy.distributed.checks import expected_min_noisy_sites

    m = expected_min_noisy_sites(cfg)
    if m < policy.min_noisy_sites:
        return [Refusal("noise-mode", f"min_noisy_sites={m} < site floor {policy.min_noisy_sites}")]
    return []


def refusal_code(refusals: list[Refusal]) -> int:
    """Return the public code of the first refusal (0: none): what a site tells the server."""
    return REFUSAL_CODES[refusals[0].code] if refusals else 0
