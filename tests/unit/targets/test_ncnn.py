"""The ncnn target's host side: its table row (no int8, and why), reading pnnx's param files
(layers, op counts, the in0/out0 blob names it maps the source tensors to), and the host's
refusal of --quant int8 before any container starts."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

import targets
from targets.ncnn import NcnnConverter, param_op_report, read_param

# What pnnx 20261020 wrote for examples/digits/model.onnx at fp16=0 (its Conv+Relu fused).
DIGITS_PARAM = """7767517
7 7
Input                    in0                      0 1 in0
Convolution              convrelu_0               1 1 in0 1 0=16 1=3 11=3 12=1 13=1 14=1 2=1 3=1 4=1 5=1 6=144 9=1
Convolution              convrelu_1               1 1 1 2 0=32 1=3 11=3 12=1 13=1 14=1 2=1 3=1 4=1 5=1 6=4608 9=1
Pooling                  maxpool2d_0              1 1 2 3 0=0 1=2 11=2 12=2 13=0 2=2 3=0 5=1
Flatten                  flatten_8                1 1 3 4
InnerProduct             fcrelu_0                 1 1 4 5 0=64 1=1 2=32768 9=1
InnerProduct             linear_7                 1 1 5 out0 0=10 1=1 2=640
"""


def converter(inputs, outputs) -> NcnnConverter:
    made = NcnnConverter.__new__(NcnnConverter)  # io_map and op_report read only the job's I/O
    made.job = SimpleNamespace(inputs=inputs, outputs=outputs)
    return made


@pytest.fixture
def digits_param(tmp_path):
    param = tmp_path / "model.param"
    param.write_text(DIGITS_PARAM)
    param.with_suffix(".bin").write_bytes(bytes(153144))
    return param


def test_the_row_offers_fp32_and_fp16_and_says_why_not_int8():
    target = targets.get("ncnn")
    assert target.quantizations == ("fp32", "fp16") and target.default_quant == "fp16" and target.runtime_backend == "ncnn"
    assert target.artifact_suffix == ".param" and target.companion_suffixes == (".bin",)
    assert "ncnn2table" in target.description and "pnnx" in target.toolchain_packages


def test_a_param_file_reads_as_layers_and_an_op_report(digits_param):
    layers = read_param(digits_param)
    assert [layer["type"] for layer in layers][:2] == ["Input", "Convolution"] and layers[-1]["outputs"] == ["out0"]
    report = param_op_report(digits_param, [], [])
    assert report["ops"] == {"Convolution": 2, "Flatten": 1, "InnerProduct": 2, "Pooling": 1} and report["op_count"] == 6
    assert report["file_size"] == len(DIGITS_PARAM) + 153144 and report["weights_file_size"] == 153144


def test_a_file_that_is_not_a_param_file_is_named(tmp_path):
    wrong = tmp_path / "model.param"
    wrong.write_text("<?xml version='1.0'?>\n")
    with pytest.raises(RuntimeError, match=r"model.param is not an ncnn param file .*expected 7767517"):
        read_param(wrong)


def test_source_tensors_map_to_pnnxs_blob_names_with_their_shapes(digits_param):
    made = converter([{"name": "input", "shape": [1, 1, 8, 8]}], [{"name": "logits", "shape": [1, 10]}])
    assert made.io_map(digits_param) == {"inputs": {"input": {"name": "in0", "shape": [1, 1, 8, 8], "perm": None}},
                                         "outputs": {"logits": {"name": "out0", "shape": [1, 10], "perm": None}}}
    two_outputs = converter([{"name": "input", "shape": [1, 1, 8, 8]}], [{"name": "a", "shape": [1, 10]}, {"name": "b", "shape": [1]}])
    with pytest.raises(RuntimeError, match=r"has no outputs blobs \['out1'\]"):
        two_outputs.io_map(digits_param)


def test_int8_is_refused_on_the_host_before_any_container(tmp_path):
    from edgeship.convert.request import Request, plan
    from edgeship.errors import EdgeshipError
    from tests.support import tiny_cnn

    model = tiny_cnn(tmp_path / "model.onnx")
    with pytest.raises(EdgeshipError, match=r"target ncnn does not offer --quant int8; choose one of: fp32, fp16"):
        plan(Request(target="ncnn", model=model, quant="int8", out=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def _graph(path, alpha: float, weight_scale: float):
    """x -> Conv (weights times weight_scale, with a bias) -> HardSigmoid(alpha, 0.5) -> y."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((4, 2, 3, 3)) * weight_scale).astype(np.float32), "w")
    bias = numpy_helper.from_array((rng.standard_normal(4) * weight_scale).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("HardSigmoid", ["c"], ["y"], name="hs", alpha=alpha, beta=0.5)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [weights, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _run(path, x):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_paddles_hardsigmoid_and_tiny_fp16_weights_are_rewritten_into_the_same_function(tmp_path):
    import numpy as np
    import onnx

    from targets.ncnn import rewrite_for_pnnx

    source = _graph(tmp_path / "source.onnx", alpha=0.2, weight_scale=1e-4)
    lines = rewrite_for_pnnx(source, tmp_path / "rewritten.onnx", fp16=True)
    assert lines[0] == "hs: HardSigmoid alpha 0.2 beta 0.5 -> Clip(x * alpha + beta, 0, 1)" and len(lines) == 2
    assert re.fullmatch(r"conv: Conv weights at most 0\.000\d+, stored x 2\^1[0-4], the output x 2\^-1[0-4]", lines[1]), lines[1]
    ops = [node.op_type for node in onnx.load(str(tmp_path / "rewritten.onnx")).graph.node]
    assert ops == ["Conv", "Mul", "Mul", "Add", "Clip"]
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32) * 1000
    assert np.allclose(_run(tmp_path / "rewritten.onnx", x), _run(source, x), atol=1e-6)


def test_torchs_hardsigmoid_and_ordinary_weights_are_left_alone(tmp_path):
    from targets.ncnn import rewrite_for_pnnx

    source = _graph(tmp_path / "source.onnx", alpha=1 / 6, weight_scale=0.1)
    assert rewrite_for_pnnx(source, tmp_path / "rewritten.onnx", fp16=True) == [] and not (tmp_path / "rewritten.onnx").exists()
    tiny = _graph(tmp_path / "tiny.onnx", alpha=1 / 6, weight_scale=1e-4)
    assert rewrite_for_pnnx(tiny, tmp_path / "fp32.onnx", fp16=False) == []  # fp32 weights keep their bits
