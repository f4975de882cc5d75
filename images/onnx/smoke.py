"""Smoke test run inside a freshly built onnx image: the toolchain imports, runs and quantizes."""

import importlib.metadata as metadata

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import quantize_dynamic

weights = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "w")
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "smoke",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weights])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, "/tmp/smoke.onnx")
session = onnxruntime.InferenceSession("/tmp/smoke.onnx", providers=["CPUExecutionProvider"])
assert np.allclose(session.run(None, {"x": np.ones((1, 4), np.float32)})[0], 2.0)
quantize_dynamic("/tmp/smoke.onnx", "/tmp/smoke-int8.onnx")
print("smoke ok:", {name: metadata.version(name) for name in ("onnx", "onnxruntime", "numpy")})
