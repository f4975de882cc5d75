"""Smoke test run inside a freshly built rk3588 image: the toolkit builds an RKNN model and
its x86 simulator runs it (network off)."""

import importlib.metadata as metadata
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rknn.api import RKNN

weights = numpy_helper.from_array(np.full((4, 3, 1, 1), 0.5, np.float32), "w")
graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "smoke",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [weights])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
os.chdir(tempfile.mkdtemp())
onnx.save(model, "smoke.onnx")
rknn = RKNN(verbose=False)
for step, code in (("config", lambda: rknn.config(target_platform="rk3588")), ("load_onnx", lambda: rknn.load_onnx("smoke.onnx")),
                   ("build", lambda: rknn.build(do_quantization=False)), ("export_rknn", lambda: rknn.export_rknn("smoke.rknn")),
                   ("init_runtime", lambda: rknn.init_runtime())):
    assert code() == 0, f"{step} failed"
out = rknn.inference(inputs=[np.ones((1, 4, 4, 3), np.float32)])[0]
assert out.shape == (1, 4, 4, 4) and np.allclose(out, 1.5, atol=1e-2), out
rknn.release()
print("smoke ok:", {name: metadata.version(name) for name in ("rknn-toolkit2", "torch", "tensorflow-cpu", "onnx", "numpy")})
