"""The drift monitor inside a site's round: what it keeps, what it charges, what may leave."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_fed.config import ConfigError, load_config
from ssl_fed.data import ImageDataset
from ssl_fed.fed.rounds import site_scalars
from ssl_fed.models import build_model
from ssl_fed.monitor.inject import drifted_dataset, rotate
from ssl_fed.monitor.report import federated_drift_records
from ssl_fed.monitor.site import SKETCH_FILE, site_drift
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.policy import SitePolicy, simulation_policy
from ssl_fed.site.rounds import declared_update

TINY = ["encoder.width=8", "encoder.norm_groups=4", "encoder.proj_hidden=16", "encoder.proj_dim=8"]
EPS = 8.0


def _images(n: int, drifted: bool, seed: int) -> ImageDataset:
    """Quiet: dim noise; drifted: a bright checkerboard under the same noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 1, 8, 8), generator=g) * 0.3
    if drifted:
        board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
        x = x + 0.7 * board.float()
    return ImageDataset(x.float(), torch.zeros(n, dtype=torch.long), "test")


def _run(tmp_path: Path, policy: SitePolicy, rounds: list[bool], ledger=None, size=128):
    cfg = load_config([*TINY, f"data.public_size={size}"])
    torch.manual_seed(0)  # a fixed public encoder: only the release noise is random
    encoder = build_model(cfg.encoder, 1).encoder
    book = ledger or (lambda: PrivacyLedger(tmp_path, budget=policy.epsilon_budget, delta=1e-5))
    return [
        site_drift(
            cfg, tmp_path, policy, _images(128, drifted, r), encoder.state_dict, book, "run", r
        )
        for r, drifted in enumerate(rounds, start=1)
    ]


def test_a_dp_alarm_site_charges_one_epoch_first_and_its_alarm_latches(tmp_path):
    # Prepare
    policy = SitePolicy(epsilon_budget=20, drift_release="dp-alarm", drift_alarm_epsilon=EPS)

    # Execute: quiet, drifted, drifted (each round a new call: state comes from the state dir)
    out = _run(tmp_path, policy, [False, True, True])

    # Assert: 0, then 1, then the latched 1; one epoch charged in round 1, before its release
    assert [o for o, _ in out] == [{"drift-alarm": 0}, {"drift-alarm": 1}, {"drift-alarm": 1}]
    assert [log["epsilon"] for _, log in out] == [EPS, 0.0, 0.0]
    ledger = PrivacyLedger(tmp_path)
    assert [(r.round, r.epsilon, r.mechanism) for r in ledger.releases] == [(1, EPS, "svt")]
    assert (tmp_path / SKETCH_FILE).is_file()


def test_a_reference_for_other_sizes_is_rebuilt_and_opens_a_new_epoch(tmp_path):
    # Prepare: a quiet round under windows of 64
    policy = SitePolicy(epsilon_budget=20, drift_release="dp-alarm", drift_alarm_epsilon=EPS)
    _run(tmp_path, policy, [False])

    # Execute: the next run declares another size (windows of 32)
    [(outgoing, _)] = _run(tmp_path, policy, [False], size=64)

    # Assert: a new sketch, and its epoch charged anew (no stale noisy threshold reused)
    saved = torch.load(tmp_path / SKETCH_FILE, weights_only=True)
    assert saved["sketch"]["window"] == 32 and outgoing == {"drift-alarm": 0}
    assert [r.epsilon for r in PrivacyLedger(tmp_path).releases] == [EPS, EPS]


def test_a_release_the_budget_cannot_afford_is_not_made(tmp_path):
    # Prepare: the budget is below one epoch's ε
    policy = SitePolicy(epsilon_budget=1, drift_release="dp-alarm", drift_alarm_epsilon=EPS)

    # Execute
    [(outgoing, log)] = _run(tmp_path, policy, [True])

    # Assert: nothing leaves, nothing charged
    assert outgoing == {} and log["released"] is None
    assert PrivacyLedger(tmp_path).releases == []


def test_a_local_site_sends_nothing_and_never_opens_its_ledger(tmp_path):
    # Prepare
    policy = SitePolicy(epsilon_budget=20, drift_release="local")

    def no_ledger() -> PrivacyLedger:
        raise AssertionError("a local monitor must not charge anything")

    # Execute
    out = _run(tmp_path, policy, [False, True], ledger=no_ledger)

    # Assert: the local alert stays in the site's log
    assert [o for o, _ in out] == [{}, {}]
    assert [log["local_alarm"] for _, log in out] == [False, True]
    assert out[1][1]["statistic"] > out[0][1]["statistic"]


def test_no_policy_or_none_runs_no_monitor(tmp_path):
    # Execute
    out = _run(tmp_path, SitePolicy(epsilon_budget=20), [True])

    # Assert
    assert out == [({}, None)] and not (tmp_path / SKETCH_FILE).exists()


@pytest.mark.parametrize(
    ("release", "listed"), [("none", False), ("local", False), ("dp-alarm", True)]
)
def test_the_guard_lists_the_alarm_only_under_a_dp_alarm_policy(release, listed):
    # Prepare
    cfg = load_config(TINY)
    policy = SitePolicy(epsilon_budget=8, drift_release=release)

    # Execute
    _, allowed = declared_update(cfg, 1, policy)

    # Assert
    assert ("drift-alarm" in allowed) is listed
    assert "drift-alarm" not in declared_update(cfg, 1)[1]


def test_the_server_accepts_the_bit_and_refuses_a_statistic():
    # Execute / Assert
    assert site_scalars({"epsilon": 1.0, "drift-alarm": 1}) == {"epsilon": 1.0, "drift-alarm": 1.0}
    assert site_scalars({"drift-alarm": 1.0}) == {"drift-alarm": 1.0}  # SecAgg's clear floats
    assert site_scalars({"drift-alarm": 0.37}) is None
    assert site_scalars({"drift-statistic": 0.37}) is None


def test_injected_drift_changes_the_site_images_from_its_round_on():
    # Prepare
    cfg = load_config(
        ["sim.num_sites=3", "sim.drift=[{site: 1, round: 2, kind: rotate, strength: 1.0}]"]
    )
    data = _images(16, False, 0)

    # Execute
    before, after = drifted_dataset(cfg, 1, data, 1), drifted_dataset(cfg, 1, data, 3)
    other = drifted_dataset(cfg, 0, data, 3)

    # Assert: site 1 is rotated from round 2 on; site 0 never
    assert before is data and other is data
    assert torch.equal(after.images, rotate(data.images, 1.0))


def test_class_prior_drift_keeps_the_low_classes_without_duplicating_images():
    # Prepare: classes 0..3, four images each, each image unique
    labels = torch.arange(4).repeat_interleave(4)
    images = torch.arange(16, dtype=torch.float32).view(16, 1, 1, 1).expand(16, 1, 4, 4)
    data = ImageDataset(images.contiguous(), labels, "test")
    spec = "sim.drift=[{site: 0, round: 1, kind: class_prior, strength: 1.0}]"

    # Execute
    out = drifted_dataset(load_config([spec]), 0, data, 1)

    # Assert: strength 1 keeps exactly the lower half of the classes, each image once
    assert out.labels is not None and out.labels.tolist() == [0] * 4 + [1] * 4
    assert out.images[:, 0, 0, 0].tolist() == list(range(8))


def test_the_monitor_report_reads_released_alarms_from_a_federated_run(tmp_path):
    # Prepare: the server's history, and the operator's injected drift in config.yaml
    history = [
        {"round": 1, "drift_alarm": {"0": 0, "1": 0}},
        {"round": 2, "drift_alarm": {"0": 0, "1": 0}},
        {"round": 3, "drift_alarm": {"0": 0, "1": 1}},
    ]
    (tmp_path / "config.yaml").write_text(
        "sim:\n  drift:\n  - {site: 1, round: 2, kind: blur, strength: 0.5}\n"
    )

    # Execute
    records = federated_drift_records(tmp_path, {"history": history})

    # Assert
    assert [(r["site"], r["round"], r["released"], r["drift"]) for r in records] == [
        (0, 1, 0, None),
        (1, 1, 0, None),
        (0, 2, 0, None),
        (1, 2, 0, "blur"),
        (0, 3, 0, None),
        (1, 3, 1, "blur"),
    ]


@pytest.mark.parametrize(
    ("override", "field"),
    [("sim.drift_release=alarm", "sim.drift_release"), ("sim.drift_alarm_epsilon=0", "epsilon")],
)
def test_the_simulated_sites_drift_policy_is_validated(override, field):
    # Execute / Assert: one clear error naming the field
    with pytest.raises(ConfigError, match=field):
        load_config([override])


def test_the_simulated_sites_policy_is_the_operators_drift_choice():
    # Execute
    cfg = load_config(["sim.drift_release=dp-alarm", "sim.drift_alarm_epsilon=0.5"])
    policy = simulation_policy(cfg)

    # Assert
    assert (policy.drift_release, policy.drift_alarm_epsilon) == ("dp-alarm", 0.5)
    assert simulation_policy(load_config([])).drift_release == "none"
