"""privacy.noise=distributed: config refusals (exit 2, one line) and the site policy's say."""

import pytest

from ssl_fed.cli import main
from ssl_fed.config import ConfigError, load_config
from ssl_fed.privacy.distributed.checks import expected_min_noisy_sites
from ssl_fed.privacy.policy import REFUSAL_CODES, SitePolicy, check_run, simulation_policy

DDP = ["privacy.noise=distributed", "data.public_size=150"]


def test_local_noise_is_the_default():
    cfg = load_config([])
    assert cfg.privacy.noise == "local" and cfg.train.local_steps == 1


def test_distributed_with_ssl_fed_secagg_is_accepted_and_m_defaults_to_min_survivors():
    cfg = load_config(DDP)
    assert expected_min_noisy_sites(cfg) == 5  # 10 sites: k = 8 neighbours, t = 5
    assert expected_min_noisy_sites(load_config([*DDP, "privacy.min_noisy_sites=7"])) == 7


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["aggregation=plain"], "aggregation=plain is refused"),
        (["aggregation=flower-secaggplus"], "aggregation=flower-secaggplus is refused"),
        (["train.local_steps=2"], "2407.19286"),
        (["privacy=off"], "needs privacy on"),
        (["privacy.min_noisy_sites=11"], "exceeds the 10 sites"),
        (["privacy.ddp_bits=8"], "privacy.ddp_bits"),
        (["data.public_size=null"], "needs data.public_size"),
        (["privacy.unit=person"], "privacy.unit=person"),
    ],
)
def test_unsafe_combinations_are_refused_naming_the_reason(overrides, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config([*DDP, *overrides])


def test_unknown_noise_mode_is_named():
    with pytest.raises(ConfigError, match=r"privacy\.noise"):
        load_config(["privacy.noise=central"])


def test_cli_exits_2_with_one_error_line_and_trains_nothing(tmp_path, capsys):
    code = main(["train-local", *DDP, "aggregation=plain", f"out={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in err if line.startswith("error:")]) == 1
    assert "secure aggregation" in err[-1]
    assert not (tmp_path / "metrics.json").exists()


def test_a_deployed_site_refuses_distributed_rounds_unless_its_policy_accepts_them():
    cfg = load_config(DDP)
    assert [r.code for r in check_run(cfg, SitePolicy(epsilon_budget=8.0))] == ["noise-mode"]
    accepts = SitePolicy(epsilon_budget=8.0, noise_modes=("local", "distributed"))
    assert check_run(cfg, accepts) == []
    strict = SitePolicy(epsilon_budget=8.0, noise_modes=("distributed",), min_noisy_sites=6)
    assert [r.code for r in check_run(cfg, strict)] == ["noise-mode"]
    assert REFUSAL_CODES["noise-mode"] == 10  # after "unit" (9): codes are stable
    assert check_run(cfg, simulation_policy(cfg)) == []
