"""Every attack kind end to end: simulated malicious sites submit the attack, the server applies it.

Two tiny federations (4 sites, 2 rounds, digits), every site malicious with a different kind:
``plain`` aggregation with scale, sign flip, Gaussian and model replacement; ``secagg`` with
LIE, min-max, min-sum and mean override. Ground truth: each recorded submission equals the
attack applied to the recorded honest delta with what the colluders knew, and the server's
applied mean (``max_abs_delta`` in metrics.json) is the mean of the submissions (clipped to c
and quantized under SecAgg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulations.run import run_federation
from ssl_fed.attack import AttackerView, apply_attack, parse_attacks
from ssl_fed.attack.hook import load_record, record_path
from ssl_fed.config import load_config
from ssl_fed.secagg.quantize import quantization_bound
from tests.integration.conftest import TINY

pytestmark = pytest.mark.slow

PLAIN = "[{site: 0, kind: scale, strength: 5}, {site: 1, kind: sign_flip}, {site: 2, kind: gaussian, strength: 0.01}, {site: 3, kind: backdoor}]"  # noqa: E501
SECAGG = "[{site: 0, kind: lie}, {site: 1, kind: min_max}, {site: 2, kind: min_sum}, {site: 3, kind: override, strength: 0.3}]"  # noqa: E501


def simulate(out: Path, aggregation: str, attack: str) -> tuple[Any, dict[str, Any]]:
    cfg = load_config(
        [
            *TINY,
            f"out={out}",
            "sim.num_sites=4",
            "sim.rounds=2",
            aggregation,
            f"sim.attack={attack}",
        ]
    )
    return cfg, run_federation(cfg)


@pytest.fixture(
    scope="module", params=[("aggregation=plain", PLAIN), ("aggregation=secagg", SECAGG)]
)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return simulate(tmp_path_factory.mktemp("attacked"), *request.param)


def expected(cfg: Any, site: int, rnd: int) -> np.ndarray:
    specs = {s.site: s for s in parse_attacks(list(cfg.sim.attack), 4)}
    own = load_record(cfg.out, rnd, site)[0]
    known = [own] + [
        load_record(cfg.out, rnd - 1, o)[0]
        for o in sorted(specs)
        if o != site and record_path(cfg.out, rnd - 1, o).is_file()
    ]
    view = AttackerView(own, known, rnd, 4, 4, seed=cfg.sim.seed * 1009 + site)
    return apply_attack(specs[site], view)


def test_every_site_submitted_its_attack(run: Any) -> None:
    # Prepare
    cfg, metrics = run

    # Execute / Assert: every round applied all four (malicious) updates
    assert [h["completed"] for h in metrics["history"]] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    for rnd in (1, 2):
        for site in range(4):
            honest, submitted = load_record(cfg.out, rnd, site)
            if rnd == 2 or site == 3 or cfg.aggregation.name == "plain":
                # (round 1: LIE, min-max and min-sum know one update and submit it unchanged)
                assert not np.allclose(submitted, honest), (rnd, site)
            assert submitted == pytest.approx(expected(cfg, site, rnd), abs=1e-12), (rnd, site)


def test_the_server_applied_the_mean_of_the_submissions(run: Any) -> None:
    # Prepare
    cfg, metrics = run
    c = cfg.aggregation.clipping_range
    slack = 1e-6 if cfg.aggregation.name == "plain" else 2 * quantization_bound(c, 24) + 1e-6

    # Execute / Assert
    for rnd, h in zip((1, 2), metrics["history"], strict=True):
        subs = [np.clip(load_record(cfg.out, rnd, s)[1], -c, c) for s in range(4)]
        assert h["max_abs_delta"] == pytest.approx(np.abs(np.mean(subs, axis=0)).max(), abs=slack)
