"""Tiny ONNX models whose inputs are not one float image (issue 27, items 2 and 3), built with
onnx.helper: a scalar int64 `mode` choosing a branch through If, int64 token ids into an
embedding, and a uint8 image with a bool mask beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

THEN_SCALE, ELSE_SCALE = 2.0, -3.0  # y = x * 2 when mode == 1, else x * -3
VOCABULARY, WIDTH, TOKENS = 16, 8, 6


def _save(path: Path, nodes, inputs, outputs, initializers=(), opset: int = 13) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def if_model(path: Path) -> Path:
    """x float [1, 4] and mode int64 scalar -> If(Equal(mode, 1)): x * 2 (then) or x * -3 (else)."""
    def branch(name: str, scale: float):
        constant = helper.make_node("Constant", [], [f"{name}_scale"], value=helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [], [scale]))
        multiply = helper.make_node("Mul", ["x", f"{name}_scale"], [f"{name}_y"])
        return helper.make_graph([constant, multiply], name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 4])])

    nodes = [helper.make_node("Equal", ["mode", "one"], ["is_one"]),
             helper.make_node("If", ["is_one"], ["y"], then_branch=branch("then", THEN_SCALE), else_branch=branch("else", ELSE_SCALE))]
    return _save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                               helper.make_tensor_value_info("mode", TensorProto.INT64, [])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                 [numpy_helper.from_array(np.array(1, np.int64), "one")])


def embedding_table() -> np.ndarray:
    return np.random.default_rng(27).standard_normal((VOCABULARY, WIDTH)).astype(np.float32)


def token_model(path: Path) -> Path:
    """ids int64 [1, 6] -> Gather from a [16, 8] embedding -> mean over the tokens -> y [1, 8]."""
    nodes = [helper.make_node("Gather", ["embedding", "ids"], ["vectors"], axis=0),
             helper.make_node("ReduceMean", ["vectors"], ["y"], axes=[1], keepdims=0)]
    return _save(path, nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, TOKENS])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
                 [numpy_helper.from_array(embedding_table(), "embedding")])


def image_model(path: Path) -> Path:
    """image uint8 [1, 3, 8, 8] -> Cast -> /255 -> Conv 3x3 (4 filters) -> features [1, 4, 6, 6];
    mask bool [1, 4] -> Cast -> * weights -> masked [1, 4]."""
    rng = np.random.default_rng(28)
    nodes = [helper.make_node("Cast", ["image"], ["image_float"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["image_float", "inverse_255"], ["scaled"]),
             helper.make_node("Conv", ["scaled", "filters", "bias"], ["features"]),
             helper.make_node("Cast", ["mask"], ["mask_float"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["mask_float", "mask_weights"], ["masked"])]
    return _save(path, nodes, [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, 8, 8]),
                               helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 4])],
                 [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4, 6, 6]),
                  helper.make_tensor_value_info("masked", TensorProto.FLOAT, [1, 4])],
                 [numpy_helper.from_array(np.array(1 / 255, np.float32), "inverse_255"),
                  numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "filters"),
                  numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias"),
                  numpy_helper.from_array(np.array([1.0, -2.0, 3.0, -4.0], np.float32), "mask_weights")])
