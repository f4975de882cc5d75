"""onnx int8 in its image, built for speed: uint8 activations (the operand ONNX Runtime's int8 x86
and ARM kernels take), the HardSwish and Conv+affine patterns rewritten before quantization, and
the task's accuracy gate still passed. Timing is benchmarks/int8_speed.py's (no timed test):
this checks the recipe that made PP-OCR rec 0.59x fp32 there. About 80 s unloaded, cached after."""

from __future__ import annotations

import json
from collections import Counter

import onnx


def test_ppocr_rec_int8_has_uint8_activations_fused_hard_swish_and_passes_its_gate(onnx_image, convert_example):
    artifact = convert_example("ppocr-rec", "onnx", "int8")
    model = onnx.load(str(artifact / "model.onnx"))
    initializers = {init.name: init for init in model.graph.initializer}
    zero_points = Counter(initializers[node.input[2]].data_type for node in model.graph.node if node.op_type == "QuantizeLinear")
    assert zero_points and set(zero_points) == {onnx.TensorProto.UINT8}, zero_points
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["HardSwish"] == 28 and ops["Clip"] == 0 and ops["Div"] < 10, ops  # PP-LCNetV3's 28 x*Clip(x+3,0,6)/6, fused
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["accuracy"]["passed"], manifest["accuracy"]["failed"]
