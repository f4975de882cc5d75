"""A tiny stateful ONNX model, made with onnx.helper, and what it computes in numpy:
out = mean over axis 0 of (x * w + state * a), stateN = state * b + x."""

from __future__ import annotations

from pathlib import Path

import numpy as np

W = np.array([0.5, -1.0, 0.25, 2.0], np.float32)
A, B = np.float32(0.3), np.float32(0.9)
FEATURES = 4


def tiny_stateful(path: Path, batch: str | int = "batch") -> Path:
    """x [batch, 4], state [2, batch, 4] -> out [batch, 4], stateN [2, batch, 4] (batch a named dim, or a fixed size)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])
    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, batch, FEATURES])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, FEATURES])
    state_n = helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, batch, FEATURES])
    constants = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(A, "a"), numpy_helper.from_array(B, "b")]
    nodes = [helper.make_node("Mul", ["x", "w"], ["xw"], name="xw"), helper.make_node("Mul", ["state", "a"], ["sa"], name="sa"),
             helper.make_node("Add", ["xw", "sa"], ["sum"], name="sum"),
             helper.make_node("ReduceMean", ["sum"], ["out"], name="mean", axes=[0], keepdims=0),
             helper.make_node("Mul", ["state", "b"], ["sb"], name="sb"), helper.make_node("Add", ["sb", "x"], ["stateN"], name="next")]
    model = helper.make_model(helper.make_graph(nodes, "tiny_stateful", [x, state], [out, state_n], constants),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def step(x: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
    """What the model computes for one step, in numpy."""
    return {"out": (x * W + state * A).mean(axis=0), "stateN": state * B + x}
