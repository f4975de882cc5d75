"""Smoke test run inside a freshly built openvino image: an ONNX model converts to OpenVINO IR
with fp16 weights and the CPU plugin runs it as ONNX Runtime does; NNCF quantizes a MatMul to
int8 and the result stays close to fp32."""

import importlib.metadata as metadata

import nncf
import numpy as np
import onnxruntime
import openvino as ov
import openvino.opset13 as ops
from onnxruntime.datasets import get_example

# mul_1.onnx (ONNX Runtime's own sample, shipped in its wheel): Y = X * a constant, X is 3x2.
source = get_example("mul_1.onnx")
sample = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
expected = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"X": sample})[0]
ov.save_model(ov.convert_model(source), "/tmp/smoke.xml", compress_to_fp16=True)
core = ov.Core()
compiled = core.compile_model("/tmp/smoke.xml", "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
assert compiled.inputs[0].get_any_name() == "X" and compiled.inputs[0].get_element_type() == ov.Type.f32
assert np.allclose(compiled({"X": sample})[0], expected, rtol=1e-3), "the fp16 IR computes something else than ONNX Runtime"

rng = np.random.default_rng(0)
weights = rng.standard_normal((16, 16)).astype(np.float32)
x = ops.parameter([1, 16], ov.Type.f32, name="x")
model = ov.Model([ops.relu(ops.matmul(x, ops.constant(weights), False, False))], [x], "smoke")
samples = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(32)]
quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples))
assert any(op.get_type_name() == "FakeQuantize" for op in quantized.get_ordered_ops()), "NNCF inserted no FakeQuantize"
result = core.compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})({"x": samples[0]})[0].ravel()
reference = np.maximum(samples[0] @ weights, 0).ravel()
cosine = float(result @ reference / (np.linalg.norm(result) * np.linalg.norm(reference)))
assert cosine > 0.98, f"the int8 MatMul is far from fp32 (cosine {cosine:.4f})"
print("smoke ok:", {name: metadata.version(name) for name in ("openvino", "nncf", "onnxruntime", "numpy")})
