"""fold_norm_affine: a per-channel Mul + Add becomes a depthwise Conv computing the same map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ssl_fed.serve.graph import fold_norm_affine  # noqa: E402

C = 3


def _affine_model(path, gamma, beta):
    """``Relu(x * gamma + beta)`` on ``x [N, C, 4, 4]``: the tail of an exported GroupNorm."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", C, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", C, 4, 4])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "gamma"], ["scaled"], name="mul"),
            helper.make_node("Add", ["scaled", "beta"], ["shifted"], name="add"),
            helper.make_node("Relu", ["shifted"], ["y"], name="relu"),
        ],
        "affine",
        [x],
        [y],
        [numpy_helper.from_array(gamma, "gamma"), numpy_helper.from_array(beta, "beta")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_per_channel_affine_becomes_one_depthwise_conv_with_the_same_output(tmp_path):
    # Prepare: γ with a negative entry (ReLU must not be folded into it), β per channel
    gamma = np.array([2.0, -0.5, 0.25], dtype=np.float32).reshape(C, 1, 1)
    beta = np.array([0.1, 1.0, -0.3], dtype=np.float32).reshape(C, 1, 1)
    path = tmp_path / "m.onnx"
    _affine_model(path, gamma, beta)
    x = np.random.default_rng(0).standard_normal((2, C, 4, 4)).astype(np.float32)
    # Execute
    folded = fold_norm_affine(path)
    # Assert: one Conv (group C, 1x1) replaced Mul + Add; output is max(γ·x + β, 0) by hand
    nodes = onnx.load(str(path)).graph.node
    assert folded == 1 and [n.op_type for n in nodes] == ["Conv", "Relu"]
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["group"] == C and list(attrs["kernel_shape"]) == [1, 1]
    expected = np.maximum(x * gamma + beta, 0)
    assert np.abs(_run(path, x) - expected).max() <= 1e-6


def test_a_scalar_or_mismatched_constant_is_left_alone(tmp_path):
    # Prepare: a scalar γ is not a per-channel affine map
    path = tmp_path / "m.onnx"
    _affine_model(path, np.array(2.0, dtype=np.float32), np.zeros((C, 1, 1), np.float32))
    before = path.read_bytes()
    # Execute
    folded = fold_norm_affine(path)
    # Assert
    assert folded == 0 and path.read_bytes() == before


def test_a_profiled_session_writes_the_kernel_times_of_its_ops(tmp_path):
    import json

    from ssl_fed.serve.runtime import onnx_session

    # Prepare
    path = tmp_path / "m.onnx"
    gamma = np.ones((C, 1, 1), np.float32)
    _affine_model(path, gamma, np.zeros((C, 1, 1), np.float32))
    fold_norm_affine(path)
    session = onnx_session(path, threads=1, profile_prefix=str(tmp_path / "prof"))
    # Execute
    session.run(None, {"x": np.ones((2, C, 4, 4), np.float32)})
    events = json.loads(Path(session.end_profiling()).read_text())
    # Assert: the folded Conv (which ORT fuses with its Relu into FusedConv) has kernel times
    ops = {e["args"]["op_name"] for e in events if e["name"].endswith("_kernel_time")}
    assert ops and ops <= {"Conv", "Relu", "FusedConv"} and any("Conv" in op for op in ops)


def test_stripping_debug_info_keeps_the_output_and_drops_the_stack_traces(tmp_path):
    from ssl_fed.serve.graph import strip_debug_info

    # Prepare: a node carrying an exporter-style stack trace
    gamma = np.full((C, 1, 1), 3.0, np.float32)
    path = tmp_path / "m.onnx"
    _affine_model(path, gamma, np.zeros((C, 1, 1), np.float32))
    model = onnx.load(str(path))
    model.graph.node[0].doc_string = "File model.py, line 1, in forward\n" * 100
    onnx.save(model, str(path))
    x = np.random.default_rng(1).standard_normal((2, C, 4, 4)).astype(np.float32)
    # Execute
    saved = strip_debug_info(path)
    # Assert: the trace is gone, the output is still max(3x, 0)
    assert saved > 3000 and all(not n.doc_string for n in onnx.load(str(path)).graph.node)
    assert np.abs(_run(path, x) - np.maximum(3 * x, 0)).max() <= 1e-6
