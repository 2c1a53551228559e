"""`ssl-fed site start` options: node config keys, site id, port, hold-out, hints, budget line.

No Flower process is started: each test stops at the step it checks.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from flwr.common.config import parse_config_args
from PIL import Image

from ssl_fed.cli import main
from ssl_fed.config import ConfigError, load_config
from ssl_fed.deploy.flwr_cli import DeployError
from ssl_fed.deploy.pki import init_pki, site_keygen
from ssl_fed.deploy.site import (
    SiteOptions,
    describe_budget,
    node_config,
    node_config_string,
    resolve_identity,
)
from ssl_fed.deploy.site_data import deployed_splits, site_data_config, validate_site_data
from ssl_fed.deploy.supernode import runtime_port, site_id_from_key
from ssl_fed.privacy.ledger import PrivacyLedger
from ssl_fed.privacy.policy import SitePolicy
from ssl_fed.site.node import site_config, site_data, site_info


def labelled_folder(root: Path, per_class: int = 5) -> Path:
    """Two class sub-folders of ``per_class`` 8x8 grey PNGs each."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"img-{i}.png")
    return root


def options(tmp_path: Path, **kw: object) -> SiteOptions:
    key, _ = site_keygen(tmp_path / "keys", "clinic")
    base: dict[str, object] = {
        "data": labelled_folder(tmp_path / "images"),
        "state_dir": tmp_path / "state",
        "superlink": "127.0.0.1:1",
        "ca": tmp_path / "ca.crt",
        "key": key,
        "epsilon_budget": 8.0,
    }
    return SiteOptions(**(base | kw))  # type: ignore[arg-type]


def test_node_config_carries_key_dir_and_public_size_to_the_client(tmp_path: Path) -> None:
    # Prepare
    opts = options(tmp_path, public_size=112, site_id=7)
    # Execute: render as `site start` does, parse as flower-supernode does, read as the client
    rendered = node_config_string(node_config(opts, SitePolicy(epsilon_budget=8.0)))
    parsed = parse_config_args([rendered])
    info = site_info(load_config([]), parsed)
    # Assert
    assert parsed["key-dir"] == str(tmp_path / "keys")
    assert parsed["public-size"] == 112
    assert info.key_dir == tmp_path / "keys"
    assert info.public_size == 112
    assert info.label == 7


def test_cli_passes_public_size_eval_fraction_and_on_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: capture the options instead of starting the site
    seen: list[SiteOptions] = []
    monkeypatch.setattr("ssl_fed.deploy.site.start_site", lambda o: seen.append(o) or 0)
    # Execute
    code = main(
        ["site", "start", "--data", "d", "--state-dir", "s", "--superlink", "h:1", "--ca", "c",
         "--key", "k", "--epsilon-budget", "8", "--public-size", "300", "--eval-fraction", "0.2",
         "--on-bad-file", "skip"]
    )  # fmt: skip
    # Assert
    assert code == 0
    assert (seen[0].public_size, seen[0].eval_fraction, seen[0].on_bad_file) == (300, 0.2, "skip")
    assert seen[0].port is None and seen[0].site_id is None


def test_site_id_is_derived_from_the_enrolled_public_key(tmp_path: Path) -> None:
    # Prepare
    private, public = site_keygen(tmp_path, "clinic")
    other, _ = site_keygen(tmp_path, "lab")
    # Hand computation from the .pub the operator enrolls: first 2 bytes of SHA-256, big-endian
    expected = int.from_bytes(hashlib.sha256(public.read_bytes().strip()).digest()[:2], "big")
    # Execute / Assert: same id from either file, stable, in the guard's range
    assert site_id_from_key(private) == expected == site_id_from_key(public)
    assert site_id_from_key(private) == site_id_from_key(private)
    assert 0 <= expected <= 65535
    assert site_id_from_key(other) != expected or other.read_bytes() == private.read_bytes()


def test_site_id_flag_overrides_and_a_non_key_is_refused(tmp_path: Path) -> None:
    opts = options(tmp_path, site_id=42)
    assert resolve_identity(opts).site_id == 42
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(DeployError, match="--key"):
        site_id_from_key(tmp_path / "junk")


def test_a_free_port_is_picked_and_a_busy_one_is_refused_naming_the_flag(tmp_path: Path) -> None:
    # Prepare: hold a port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # Execute / Assert
        picked = runtime_port(None)
        assert picked != taken and 0 < picked < 65536
        with pytest.raises(DeployError, match="--port"):
            runtime_port(taken)


def test_cli_refuses_a_busy_port_with_exit_2_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare
    pki = init_pki(tmp_path / "pki", ["127.0.0.1"])
    key, _ = site_keygen(tmp_path / "keys", "clinic")
    data = labelled_folder(tmp_path / "images")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        # Execute
        code = main(
            ["site", "start", "--data", str(data), "--state-dir", str(tmp_path / "state"),
             "--superlink", "127.0.0.1:1", "--ca", str(pki.ca_cert), "--key", str(key),
             "--epsilon-budget", "8", "--port", port]
        )  # fmt: skip
    # Assert
    assert code == 2
    assert f"--port {port}" in capsys.readouterr().err
    assert not (tmp_path / "state" / "worker.sock").exists()


def test_a_labelled_site_trains_on_every_image_unless_it_holds_out(tmp_path: Path) -> None:
    # Prepare: 2 classes x 5 images
    opts = options(tmp_path)
    cfg = site_data_config(opts)
    # Execute
    full = deployed_splits(cfg, None)
    held = deployed_splits(cfg, 0.3)
    info = site_info(
        load_config([]), {"data-path": str(opts.data), "state-dir": str(tmp_path / "s")}
    )
    trained = site_data(load_config([]), info)
    # Assert: all 10 train by default; 0.3 of 10 (stratified) is 3 held out, 7 train
    assert len(full.train) == 10 and full.test is None
    assert (len(held.train), len(held.test or [])) == (7, 3)
    assert len(trained) == 10


def test_eval_fraction_outside_0_1_is_refused(tmp_path: Path) -> None:
    from ssl_fed.config import ConfigError

    with pytest.raises(ConfigError, match="--eval-fraction"):
        validate_site_data(options(tmp_path, eval_fraction=1.0))


def test_corrupt_image_hint_names_a_flag_site_start_accepts(tmp_path: Path) -> None:
    # Prepare: one corrupt PNG among 10 good ones
    from ssl_fed.data import DataError

    opts = options(tmp_path)
    (opts.data / "a" / "broken.png").write_bytes(b"\x89PNG truncated")
    # Execute / Assert: the hint is the flag; with the flag the 10 good images remain
    with pytest.raises(DataError, match="--on-bad-file skip") as err:
        validate_site_data(opts)
    assert "data.on_bad_file" not in str(err.value)
    kept = validate_site_data(options(tmp_path / "2", on_bad_file="skip"))
    assert len(kept.train) == 10


def test_budget_line_shows_the_lifetime_budget_and_what_is_left(tmp_path: Path) -> None:
    # Prepare: a ledger beside the site's key dir with one charged round
    from opacus.accountants import RDPAccountant

    opts = options(tmp_path)
    policy = SitePolicy(epsilon_budget=8.0)
    assert "nothing spent yet" in describe_budget(opts, policy)
    ledger = PrivacyLedger(opts.state_dir, budget=8.0, delta=1e-5, key_dir=opts.key.parent)
    ledger.charge(run_id="r", round=1, noise_multiplier=1.0, sample_rate=0.1, steps=20,
                  sensitivity=1.0)  # fmt: skip
    reference = RDPAccountant()
    reference.history = [(1.0, 0.1, 20)]
    spent = reference.get_epsilon(1e-5)
    # Execute
    line = describe_budget(opts, policy)
    # Assert: an independent accountant gives the same spend (3 decimals)
    assert "lifetime ε budget 8" in line
    assert f"spent {spent:.3f}, remaining {8 - spent:.3f}" in line


def test_the_site_policy_sigma_ceiling_overrides_the_run_config(tmp_path: Path) -> None:
    # Prepare: the operator's policy sets σ ≤ 6; the server's run config keeps its default 10
    policy = SitePolicy(epsilon_budget=8.0, max_noise_multiplier=6.0)
    rendered = node_config_string(node_config(options(tmp_path), policy))
    run_cfg = load_config([])

    # Execute: the client reads the node config and builds its view of the run
    site_cfg = site_config(run_cfg, site_info(run_cfg, parse_config_args([rendered])))

    # Assert
    assert run_cfg.privacy.max_noise_multiplier == 10.0
    assert site_cfg.privacy.max_noise_multiplier == 6.0


def test_a_non_positive_policy_ceiling_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="max_noise_multiplier"):
        SitePolicy(epsilon_budget=8.0, max_noise_multiplier=0.0)
