"""Smoke test run inside a freshly built ncnn image: pnnx converts an ONNX model to ncnn's
.param/.bin with fp16 weights, and ncnn's Python wheel runs it as ONNX Runtime does."""

import importlib.metadata as metadata
import importlib.util
import subprocess
from pathlib import Path

import ncnn
import numpy as np
import onnxruntime
from onnxruntime.datasets import get_example

# torch is left out on purpose (images/ncnn/overrides.txt): the pnnx binary must run without it.
assert importlib.util.find_spec("torch") is None, "torch is in the ncnn image again (about 5 GB); see images/ncnn/overrides.txt"

# mul_1.onnx (ONNX Runtime's own sample, shipped in its wheel): Y = X * a constant, X is 3x2.
work = Path("/tmp/smoke")
work.mkdir(exist_ok=True)
source = work / "mul_1.onnx"
source.write_bytes(Path(get_example("mul_1.onnx")).read_bytes())
# The binary itself, not `import pnnx` (its package imports torch for export()).
pnnx = Path(str(metadata.distribution("pnnx").locate_file("pnnx/pnnx")))
subprocess.run([str(pnnx), str(source), "inputshape=[3,2]", "fp16=1"], cwd=work, check=True, capture_output=True, timeout=120)
sample = np.arange(6, dtype=np.float32).reshape(3, 2) / 4
expected = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"X": sample})[0]
net = ncnn.Net()
net.opt.num_threads, net.opt.use_vulkan_compute = 1, False
assert net.load_param(str(work / "mul_1.ncnn.param")) == 0 and net.load_model(str(work / "mul_1.ncnn.bin")) == 0
extractor = net.create_extractor()
assert extractor.input("in0", ncnn.Mat(sample).clone()) == 0
status, result = extractor.extract("out0")
assert status == 0 and np.allclose(np.array(result), expected, rtol=1e-3), "the fp16 ncnn model computes something else than ONNX Runtime"
print("smoke ok:", {name: metadata.version(name) for name in ("pnnx", "ncnn", "onnxruntime", "numpy")})
