"""Smoke test run inside a freshly built jetson image: a model with a foldable constant
subgraph and a dynamic batch is folded (Polygraphy), simplified (onnxsim) and still runs."""

import importlib.metadata as metadata

import numpy as np
import onnxruntime
import onnxsim
from onnx import TensorProto, helper, numpy_helper
from polygraphy.backend.onnx import fold_constants

weights = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
nodes = [helper.make_node("Add", ["w", "w"], ["w2"]), helper.make_node("MatMul", ["x", "w2"], ["y"])]
graph = helper.make_graph(nodes, "smoke", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [weights])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
folded = fold_constants(model)
folded.ir_version = min(folded.ir_version, 10)  # onnxsim's own ONNX (and TensorRT 10.3's parser) read IR <= 10
simplified, ok = onnxsim.simplify(folded, overwrite_input_shapes={"x": [1, 4]})
assert ok and [n.op_type for n in simplified.graph.node] == ["MatMul"], [n.op_type for n in simplified.graph.node]
session = onnxruntime.InferenceSession(simplified.SerializeToString(), providers=["CPUExecutionProvider"])
assert np.allclose(session.run(None, {"x": np.ones((1, 4), np.float32)})[0], 2.0)
print("smoke ok:", {name: metadata.version(name) for name in ("onnx", "onnxruntime", "onnxsim", "polygraphy", "onnx-graphsurgeon", "numpy")})

import tensorrt  # (the bindings load TensorRT's libraries; no GPU needed to import)

print("tensorrt", tensorrt.__version__)
