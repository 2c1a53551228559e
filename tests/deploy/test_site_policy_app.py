"""A deployed site enforces its own policy in the ClientApp, in-process and through its worker.

A refused run gets ``can-train = 0`` with the refusal's code from the budget query and an error
reply to every train message; nothing is trained, no ledger entry is written, no delta is sent.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict

from ssl_fed.config import ConfigError
from ssl_fed.fed.clientapp import make_client_app
from ssl_fed.fed.guard import GuardError
from ssl_fed.fed.policy import PolicyDeclinedError
from ssl_fed.privacy.policy import REFUSAL_CODES, SitePolicy


def _site(tmp_path: Path, policy_text: str | None = None) -> dict[str, Any]:
    """A deployed site's node config over 60 random 8x8 images (no warm worker)."""
    images = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "site.npz", images=images)
    node: dict[str, Any] = {
        "data-path": str(tmp_path / "site.npz"),
        "data-format": "npz",
        "state-dir": str(tmp_path / "state"),
        "epsilon-budget": 8.0,
    }
    if policy_text is not None:
        (tmp_path / "policy.yaml").write_text(policy_text)
        node["policy"] = str(tmp_path / "policy.yaml")
    return node


def _message(kind: str, content: RecordDict) -> Message:
    meta = Metadata(1, "m1", 0, 1, "", "1", time.time(), 60.0, kind)
    return Message(content=content, metadata=meta)


def _query() -> Message:
    return _message(
        "query", RecordDict({"budget-query": ConfigRecord({"run-id": "r", "round": 1})})
    )


def _train() -> Message:
    arrays = ArrayRecord({"encoder.w": Array(np.zeros((2, 2), np.float32))})
    config = ConfigRecord({"run-id": "r", "round": 1})
    return _message("train", RecordDict({"arrays": arrays, "config": config}))


def _call(node: dict[str, Any], run_config: dict[str, Any], msg: Message) -> Message:
    context = Context(1, 1, node, RecordDict(), run_config)
    return make_client_app()(msg, context)


def _ledger_files(tmp_path: Path) -> list[Path]:
    state = tmp_path / "state"
    return sorted(p for p in state.rglob("*") if p.is_file()) if state.exists() else []


@pytest.mark.parametrize(
    "run_config, code",
    [
        ({"privacy.enabled": False}, "privacy-off"),
        ({"aggregation.name": "plain"}, "aggregation"),
        ({"aggregation.name": "flower-secaggplus"}, "aggregation"),
        ({"privacy.target_epsilon": 9.0}, "epsilon"),
        ({"privacy.noise_multiplier": 0.3}, "noise"),
    ],
)
def test_a_refused_run_is_declined_and_nothing_is_trained(
    tmp_path: Path, run_config: dict[str, Any], code: str
) -> None:
    # Prepare: the default policy (budget 8, secagg only) plus a σ floor of 0.5
    node = _site(tmp_path, "epsilon_budget: 8\nmin_noise_multiplier: 0.5\n")
    # Execute
    answer = _call(node, run_config, _query())
    refused = _call(node, run_config, _train())
    # Assert: the query says why (a public code); the train message gets an error reply
    budget = answer.content.metric_records["budget"]
    assert (budget["can-train"], budget["declined"]) == (0, REFUSAL_CODES[code])
    assert refused.has_error()
    assert refused.error.reason == f"declined: policy ({code})"
    assert _ledger_files(tmp_path) == []


def test_the_operators_run_is_accepted(tmp_path: Path) -> None:
    node = _site(tmp_path)
    budget = _call(node, {}, _query()).content.metric_records["budget"]
    assert (budget["can-train"], budget["declined"]) == (1, 0)


def test_a_round_check_refusal_stops_training_before_the_ledger(tmp_path: Path) -> None:
    # Prepare: plain allowed (so the train handler is reached without SecAgg), but a σ floor
    # that the σ calibrated for ε = 8 cannot meet
    node = _site(tmp_path, "epsilon_budget: 8\naggregations: [plain]\nmin_noise_multiplier: 50\n")
    run_config = {"aggregation.name": "plain"}
    # Execute
    budget = _call(node, run_config, _query()).content.metric_records["budget"]
    with pytest.raises(GuardError, match="PolicyDeclinedError"):  # Flower turns it into an error
        _call(node, run_config, _train())
    # Assert: declined for noise; the handler refused before train_round, so nothing was charged
    assert (budget["can-train"], budget["declined"]) == (0, REFUSAL_CODES["noise"])
    assert not any(p.name.startswith("ledger") for p in _ledger_files(tmp_path))


def test_a_node_without_a_policy_or_budget_is_refused(tmp_path: Path) -> None:
    node = _site(tmp_path)
    del node["epsilon-budget"]
    with pytest.raises(ConfigError, match="needs a policy"):
        _call(node, {}, _train())


def test_the_warm_worker_applies_its_own_policy(tmp_path: Path) -> None:
    # Prepare: a worker started with a strict policy, serving the site's socket
    from ssl_fed.deploy.worker import SiteWorker, serve

    node = _site(tmp_path)
    worker = SiteWorker(node, SitePolicy(epsilon_budget=8.0))
    serve(worker, tmp_path / "state")
    warm = {"state-dir": node["state-dir"], "warm-worker": True}
    off = {"privacy.enabled": False}
    # Execute: through the ClientApp (thin process path) and straight to the worker
    answer = _call(warm, off, _query()).content.metric_records["budget"]
    refused = _call(warm, off, _train())
    # Assert
    assert (answer["can-train"], answer["declined"]) == (0, REFUSAL_CODES["privacy-off"])
    assert refused.has_error()
    assert refused.error.reason == "declined: policy (privacy-off)"
    with pytest.raises(PolicyDeclinedError):
        worker.handle(("train", off, [], "r", 1))
    assert not any(p.name.startswith("ledger") for p in _ledger_files(tmp_path))
