"""Smoke test run inside a freshly built mnn image: MNNConvert turns an ONNX model into MNN with
fp16 weights and MNN's runtime computes what ONNX Runtime does; the offline quantizer (called
with an argv list, as the worker calls it) writes an int8 model of a small convolution that
stays close to fp32."""

import importlib.metadata as metadata
import json
import subprocess
import sys
from pathlib import Path

import MNN
import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.datasets import get_example

F = MNN.expr
work = Path("/tmp/smoke")
work.mkdir(exist_ok=True)


def tool(name: str, *argv: str) -> None:
    # The wheel's _tools returns True whatever happens: the written file is the check. sys.argv[0]
    # is "-c", standing where the tools read their program name.
    subprocess.run([sys.executable, "-c", f"import _tools, sys; _tools.{name}(sys.argv)", *argv], check=True, timeout=300)


def run(model: Path, name: str, output: str, sample: np.ndarray) -> np.ndarray:
    runtime = MNN.nn.create_runtime_manager(({"backend": "CPU", "precision": "high", "numThread": 1},))
    module = MNN.nn.load_module_from_file(str(model), [name], [output], runtime_manager=runtime)
    result = module.forward([F.const(sample, list(sample.shape), F.NCHW)])[0]
    return np.array(F.convert(result, F.NCHW).read())


# mul_1.onnx (ONNX Runtime's own sample, shipped in its wheel): Y = X * a constant, X is 3x2.
source = get_example("mul_1.onnx")
sample = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
expected = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"X": sample})[0]
tool("mnnconvert", "-f", "ONNX", "--modelFile", source, "--MNNModel", str(work / "mul.mnn"), "--fp16", "--bizCode", "edgeship")
assert np.allclose(run(work / "mul.mnn", "X", "Y", sample), expected, rtol=1e-3), "the fp16 MNN model computes something else than ONNX Runtime"

# A 3x3 convolution + ReLU as ONNX, converted and quantized on 8 samples.
rng = np.random.default_rng(0)
weights = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])], "smoke",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], [numpy_helper.from_array(weights, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, str(work / "conv.onnx"))
tool("mnnconvert", "-f", "ONNX", "--modelFile", str(work / "conv.onnx"), "--MNNModel", str(work / "conv.mnn"), "--bizCode", "edgeship")
samples = [rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(8)]
for index, value in enumerate(samples):
    folder = work / "calib" / f"{index:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.txt").write_text(" ".join(f"{v:.9g}" for v in value.ravel()))
    # Without input.json in every sample's folder the quantizer dies of SIGSEGV (MNN 3.6.1).
    (folder / "input.json").write_text(json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 16, 16]}], "outputs": ["y"]}))
(work / "quant.json").write_text(json.dumps({"path": str(work / "calib"), "input_type": "sequence", "feature_quantize_method": "KL",
                                             "weight_quantize_method": "MAX_ABS", "inputs": [{"name": "x", "shape": [1, 3, 16, 16]}]}))
tool("mnnquant", str(work / "conv.mnn"), str(work / "conv-int8.mnn"), str(work / "quant.json"))
reference, result = run(work / "conv.mnn", "x", "y", samples[0]).ravel(), run(work / "conv-int8.mnn", "x", "y", samples[0]).ravel()
assert (work / "conv-int8.mnn").stat().st_size < (work / "conv.mnn").stat().st_size or not np.array_equal(result, reference), \
    "the quantizer wrote the float model back"
cosine = float(result @ reference / (np.linalg.norm(result) * np.linalg.norm(reference)))
assert cosine > 0.98, f"the int8 convolution is far from fp32 (cosine {cosine:.4f})"
print("smoke ok:", {name: metadata.version(name) for name in ("mnn", "onnxruntime", "numpy")}, f"int8 cosine {cosine:.4f}")
