"""One Ray simulation: ServerApp drives run_secagg_round, ClientApp trains behind secagg_mod."""

from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from ssl_fed.fed.secagg_driver import run_secagg_round, spec_from_arrays, to_array_record
from ssl_fed.fed.secagg_mod import secagg_mod
from ssl_fed.secagg import AggregateResult, SecAggConfig

N = 5


def make_client() -> ClientApp:
    app = ClientApp()

    @app.train(mods=[secagg_mod])
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        if pid == msg.content["config"]["fail"]:
            raise RuntimeError("site crashes during training")
        new = {k: v.numpy() + 0.01 * (pid + 1) for k, v in msg.content["arrays"].items()}
        return Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({k: Array(v.astype(np.float32)) for k, v in new.items()}),
                    "metrics": MetricRecord({"num-examples": pid + 1, "loss": 0.5}),
                }
            ),
            reply_to=msg,
        )

    return app


def make_server(out: dict[str, Any]) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes: list[int] = []
        while len(nodes) < N:
            nodes = list(grid.get_node_ids())
        init = ArrayRecord(
            {"w": Array(np.zeros((20, 30), np.float32)), "b": Array(np.ones(7, np.float32))}
        )
        cfg = SecAggConfig(stage_timeout=30, train_timeout=60)
        for fail in (-1, 2):
            content = RecordDict({"arrays": init, "config": ConfigRecord({"fail": fail})})
            out[fail] = run_secagg_round(grid, nodes, content, spec_from_arrays(init), cfg)
        out["record"] = to_array_record(out[-1])

    return app


@pytest.mark.slow
def test_flower_simulation_round_with_and_without_dropout() -> None:
    # Prepare
    out: dict[str, Any] = {}
    # Execute
    run_simulation(
        make_server(out),
        make_client(),
        num_supernodes=N,
        backend_config={"client_resources": {"num_cpus": 1}},
    )
    # Assert: weights pid+1, delta 0.01*(pid+1) -> mean delta 0.01*sum(w^2)/sum(w).
    full, dropped = out[-1], out[2]
    assert isinstance(full, AggregateResult) and isinstance(dropped, AggregateResult)
    want_full = 0.01 * 55 / 15
    want_drop = 0.01 * (55 - 9) / (15 - 3)
    assert np.abs(full.arrays["w"] - want_full).max() <= full.error_bound + 1e-6
    assert np.abs(full.arrays["b"] - 1 - want_full).max() <= full.error_bound + 1e-6
    assert len(full.survivors) == N and full.total_weight == 15
    assert len(dropped.survivors) == N - 1 and dropped.total_weight == 12
    assert np.abs(dropped.arrays["w"] - want_drop).max() <= dropped.error_bound + 1e-6
    assert out["record"]["w"].numpy().dtype == np.float32
