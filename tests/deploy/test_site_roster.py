"""Deployed SecAgg signing identities: `site start --roster` -> node config -> the ClientApp."""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import Context, RecordDict

from ssl_fed.deploy.flwr_cli import DeployError
from ssl_fed.deploy.pki import site_keygen
from ssl_fed.deploy.site import SiteOptions, node_config, resolve_paths
from ssl_fed.fed.clientapp import _node_identity
from ssl_fed.privacy.policy import SitePolicy
from ssl_fed.secagg import AggregateResult, SecAggConfig, run_local_round
from tests.secagg.helpers import SPEC, exact_mean, max_err, site_inputs

IDS = [11, 22, 33, 44]


def _sites(tmp_path: Path) -> tuple[list[Path], Path]:
    roster = tmp_path / "roster"
    roster.mkdir()
    privates = []
    for i in IDS:
        private, public = site_keygen(tmp_path / f"keys{i}", f"site{i}")
        (roster / public.name).write_bytes(public.read_bytes())
        privates.append(private)
    return privates, roster


def _context(node: dict[str, str]) -> Context:
    return Context(run_id=1, node_id=1, node_config=node, state=RecordDict(), run_config={})


def test_roster_reaches_the_node_config_and_a_bad_roster_is_refused(tmp_path: Path) -> None:
    # Prepare
    privates, roster = _sites(tmp_path)
    (tmp_path / "ca.crt").write_text("x")
    opts = SiteOptions(
        data=tmp_path,
        state_dir=tmp_path / "state",
        superlink="127.0.0.1:9093",
        ca=tmp_path / "ca.crt",
        key=privates[0],
        roster=roster,
    )
    # Execute
    node = node_config(resolve_paths(opts), SitePolicy(epsilon_budget=8.0))
    # Assert
    assert node["roster-dir"] == str(roster.resolve())
    assert node["identity-key"] == str(privates[0].resolve())
    with pytest.raises(DeployError, match="--roster"):
        resolve_paths(SiteOptions(**{**opts.__dict__, "roster": tmp_path / "empty"}))


def test_without_a_roster_no_identity_is_loaded() -> None:
    assert _node_identity(_context({"data-path": "d", "state-dir": "s"})) is None


def test_node_keys_sign_a_round_that_aggregates_exactly(tmp_path: Path) -> None:
    # Prepare: each site loads its own ECDSA P-384 node key and the shared roster
    privates, roster = _sites(tmp_path)
    identities = {}
    for i, private in zip(IDS, privates, strict=True):
        node = {"roster-dir": str(roster), "identity-key": str(private)}
        identity_of = _node_identity(_context(node))
        assert identity_of is not None
        identities[i] = identity_of(i)
    # Execute
    inputs = site_inputs(IDS, seed=5)
    res = run_local_round(inputs, SPEC, SecAggConfig(), identities=identities)
    # Assert: the signed round completes and equals the exact mean within the quantization bound
    assert isinstance(res, AggregateResult) and res.survivors == IDS
    assert max_err(res.arrays, exact_mean(inputs, IDS)) <= res.error_bound + 1e-12


def test_a_key_off_the_roster_cannot_join_a_signed_round(tmp_path: Path) -> None:
    # Prepare: site 44 signs with a key its peers' roster does not hold
    privates, roster = _sites(tmp_path)
    outsider, _ = site_keygen(tmp_path / "outsider", "outsider")
    identities = {}
    for i, private in zip(IDS, [*privates[:-1], outsider], strict=True):
        node = {"roster-dir": str(roster), "identity-key": str(private)}
        identity_of = _node_identity(_context(node))
        assert identity_of is not None
        identities[i] = identity_of(i)
    # Execute
    res = run_local_round(site_inputs(IDS, seed=5), SPEC, SecAggConfig(), identities=identities)
    # Assert: the outsider is not aggregated (its peers refuse its keys)
    assert not (isinstance(res, AggregateResult) and 44 in res.survivors)
