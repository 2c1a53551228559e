"""A new pretext task from ONE Python file and ONE YAML file trains, federates, keeps its head.

The task is docs/examples/hflip.py (horizontal-flip prediction), copied into a temporary
directory and registered through ``SSL_FED_PLUGINS`` (the simulation's site processes inherit
the variable); its YAML is docs/examples/hflip.yaml, copied into a temporary copy of configs/.
Nothing else in the tree names it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict

from ssl_fed.config import RootConfig, load_config
from ssl_fed.data.dataset import ImageDataset
from ssl_fed.fed import arrays as fa
from ssl_fed.fed import site as st
from ssl_fed.models import HEADS, build_model
from ssl_fed.plugins import PLUGINS_ENV, import_plugins
from ssl_fed.site import node, rounds
from ssl_fed.tasks import TASKS
from ssl_fed.train import local
from tests.helpers import images
from tests.integration.conftest import ROOT, TINY

EXAMPLE = ROOT / "docs" / "examples"


@pytest.fixture(scope="module")
def hflip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Register the example task from a temporary module; yield a configs/ dir with its YAML."""
    plugin_dir, config = tmp_path_factory.mktemp("plugin"), tmp_path_factory.mktemp("cfg")
    plugin = plugin_dir / "hflip_example.py"
    shutil.copy(EXAMPLE / "hflip.py", plugin)
    shutil.copytree(ROOT / "configs", config, dirs_exist_ok=True)
    shutil.copy(EXAMPLE / "hflip.yaml", config / "task" / "hflip.yaml")
    saved = {k: os.environ.get(k) for k in (PLUGINS_ENV, "SSL_FED_CONFIG_DIR")}
    os.environ[PLUGINS_ENV], os.environ["SSL_FED_CONFIG_DIR"] = str(plugin), str(config)
    import_plugins()
    yield config
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    TASKS.pop("hflip", None)
    HEADS.pop("hflip", None)
    sys.modules.pop("ssl_fed_plugin_hflip_example", None)


def site_config(share_heads: bool) -> RootConfig:
    cfg = load_config(
        [*TINY, "task=hflip", "train.batch_size=8", "train.max_rounds=2", "data.public_size=16"]
    )
    cfg.aggregation.share_heads = share_heads
    cfg.privacy.noise_multiplier = 1.0
    return cfg


def two_rounds(monkeypatch, tmp_path: Path, share_heads: bool) -> dict[str, Any]:
    """Two rounds of one site's real ``train_round``; the server's mean of one delta is itself.

    Returns the received arrays of each round and the site's head (every head, named
    ``<head>.<param>``) at the start of each round's training and as kept after round 1.
    """
    cfg = site_config(share_heads)
    monkeypatch.setattr(node, "site_data", lambda cfg, info: ImageDataset(images(20), None, "d"))
    info = st.site_info(cfg, {"data-path": "unused.npz", "state-dir": str(tmp_path / "s")})
    started: list[dict[str, torch.Tensor]] = []
    real_train_local = local.train_local

    def spy(task, *args, **kwargs):  # the heads as training starts
        started.append({k: v.clone() for k, v in fa.head_state(task.model).items()})
        return real_train_local(task, *args, **kwargs)

    monkeypatch.setattr(rounds, "train_local", spy)
    torch.manual_seed(0)
    received1 = fa.state_to_arrays(fa.federated_state(build_model(cfg.encoder, 1), share_heads))
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    delta1, _ = st.train_round(cfg, info, received1, ctx, "run", 1)
    aggregate1 = fa.add_arrays(received1, fa.mean_arrays([delta1]))
    kept = (
        dict(ctx.state.array_records[st.HEADS_RECORD].to_torch_state_dict())
        if not share_heads
        else {}
    )
    st.train_round(cfg, info, aggregate1, ctx, "run", 2)
    names = list(fa.federated_state(build_model(cfg.encoder, 1), share_heads))
    return {
        "aggregate1": dict(zip(names, aggregate1, strict=True)),
        "started": started,
        "kept": kept,
    }


@pytest.mark.slow
def test_a_site_keeps_the_new_tasks_head_across_rounds(hflip, monkeypatch, tmp_path):
    # Execute: two rounds, heads not shared (they stay at the site)
    run = two_rounds(monkeypatch, tmp_path, share_heads=False)

    # Assert: round 2 trains from the head round 1 left (trained, so not the fresh one)
    first, second = run["started"]
    assert {"hflip.weight", "hflip.bias"} <= set(run["kept"])
    assert not torch.equal(first["hflip.weight"], run["kept"]["hflip.weight"])
    for name, value in second.items():
        assert torch.equal(value, run["kept"][name]), name


@pytest.mark.slow
def test_a_shared_new_head_starts_round_2_from_round_1s_aggregate(hflip, monkeypatch, tmp_path):
    # Execute: two rounds, heads federated with the encoder
    run = two_rounds(monkeypatch, tmp_path, share_heads=True)

    # Assert: the head is part of the update, moved in round 1, and round 2 starts from it
    first, second = run["started"]
    for name in ("hflip.weight", "hflip.bias"):
        expected = torch.from_numpy(run["aggregate1"][name])
        assert not torch.equal(first[name], expected)
        assert torch.equal(second[name], expected), name


@pytest.mark.slow
def test_two_simulated_rounds_train_and_federate_the_new_task(hflip, tmp_path):
    # Prepare: 3 Ray sites, the new task, heads federated
    from ssl_fed.fed.simulation import run_federation

    cfg = load_config(
        [
            *TINY,
            f"out={tmp_path}",
            "sim.num_sites=3",
            "sim.rounds=2",
            "task=hflip",
            "aggregation.share_heads=true",
        ]
    )

    # Execute
    metrics = run_federation(cfg)

    # Assert: every site trained the new task in both rounds; its head is in the global model
    # and moved away from the server's initial one (built as the server builds it)
    ckpt = torch.load(tmp_path / "checkpoints/last.pt", weights_only=False)
    names = list(ckpt["names"])
    assert metrics["rounds_completed"] == 2
    assert [h["completed"] for h in metrics["history"]] == [[0, 1, 2], [0, 1, 2]]
    assert all(set(h["site_local_losses"]) == {"hflip"} for h in metrics["history"])
    assert {"hflip.weight", "hflip.bias"} <= set(names)
    torch.manual_seed(cfg.sim.seed)
    init = fa.federated_state(build_model(cfg.encoder, 1), True)
    head = np.asarray(ckpt["arrays"][names.index("hflip.weight")])
    assert list(init) == names
    assert float(np.abs(head - init["hflip.weight"].numpy()).max()) > 0
