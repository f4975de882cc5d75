"""targets.graph.clean on tiny real ONNX models, run with ONNX Runtime before and after."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from targets.graph import PER_CHANNEL_QUANTIZER_MIN_OPSET, VALID_NAME, clean

REPO = Path(__file__).resolve().parents[3]
# TensorFlow's own rules (tensorflow/python/framework/ops.py): a root-scope op name, and a
# nested scope name. onnx2tf names every TF op / Keras layer after its ONNX node.
TF_OP_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")
TF_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.\\/>-]*$")


def quiet(line):
    pass


def run(model_or_path, feeds: dict) -> list[np.ndarray]:
    content = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def all_names(model) -> tuple[set[str], set[str]]:
    """(tensor names, node names) of a model, subgraphs included."""
    tensors, nodes = set(), set()

    def visit(graph):
        tensors.update(v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info))
        tensors.update(init.name for init in graph.initializer)
        for node in graph.node:
            nodes.add(node.name)
            tensors.update(name for name in list(node.input) + list(node.output) if name)
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    visit(attribute.g)

    visit(model.graph)
    return tensors, nodes


def save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def make_model(graph, opset: int, ir_version: int = 8, **kwargs):
    """A model stamped like an exporter's: the installed onnx would write its newest IR
    version (12 for onnx 1.19), which ONNX Runtime 1.23 cannot read."""
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] + kwargs.pop("extra_opsets", []), ir_version=ir_version, **kwargs)


def names_model(path: Path) -> Path:
    """paddle2onnx / tf2onnx / torch style names: '@', ':', a leading '/', a leading '_',
    an unnamed node and two nodes called 'dup'."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w@1")
    bias = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "_bias")
    nodes = [
        helper.make_node("MatMul", ["input:0", "w@1"], ["/model/MatMul_output_0"], name="/model/MatMul"),
        helper.make_node("Relu", ["/model/MatMul_output_0"], ["relu@out"], name="Softmax@0"),
        helper.make_node("Sigmoid", ["/model/MatMul_output_0"], ["sig"], name="dup"),
        helper.make_node("Tanh", ["relu@out"], ["tanh"], name="dup"),
        helper.make_node("Add", ["tanh", "sig"], ["sum"]),
        helper.make_node("Mul", ["sum", "_bias"], ["out:0"], name="scale"),
    ]
    graph = helper.make_graph(nodes, "names", [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("out:0", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 4])], [weight, bias])
    model = make_model(graph, 17)
    model.metadata_props.add(key="character", value="abc")
    return save(model, path)


def test_names_become_valid_for_tensorflow_and_are_reported(tmp_path):
    source = names_model(tmp_path / "names.onnx")
    model, report = clean(source, {"input:0": [2, 4]}, log=quiet)

    tensors, nodes = all_names(model)
    for name in tensors | nodes:
        assert VALID_NAME.match(name) and TF_OP_NAME.match(name) and TF_SCOPE_NAME.match(name), name
        # ONNX Runtime's quantizer appends suffixes like these; the names must stay valid.
        assert TF_OP_NAME.match(name + "_QuantizeLinear_Output")
    assert len(nodes) == len(model.graph.node), "node names are unique"
    renamed = report["renamed"]
    assert renamed["inputs"] == {"input:0": "input_0"}
    assert renamed["outputs"] == {"out:0": "out_0"}
    assert renamed["tensors"]["relu@out"] == "relu_out" and renamed["tensors"]["/model/MatMul_output_0"] == "model/MatMul_output_0"
    assert renamed["tensors"]["_bias"] == "t_bias"
    assert renamed["nodes"]["Softmax@0"] == "Softmax_0"
    assert "sum" in {value.name for value in model.graph.output}, "valid names stay as they are"
    assert "scale" in nodes and "dup" in nodes
    assert "sum" not in renamed["tensors"] and "scale" not in renamed["nodes"]
    assert [prop.key for prop in model.metadata_props] == ["character"]

    # ONNX Runtime refuses the source itself ("two nodes with same node name (dup)"), so
    # the folding only works because the names are fixed first.
    fold = next(step for step in report["steps"] if step["step"] == "fold constants")
    assert fold["with"] != "none", fold
    if importlib.util.find_spec("onnxsim"):  # onnxsim gets the input shapes under their new names
        assert fold["with"].startswith("onnxsim"), fold

    source_model = onnx.load(str(source))
    weight, bias = (numpy_helper.to_array(init) for init in source_model.graph.initializer)
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    product = x @ weight
    total = np.tanh(np.maximum(product, 0)) + 1 / (1 + np.exp(-product))
    out, summed = run(model, {"input_0": x})
    np.testing.assert_allclose(summed, total, atol=1e-5)
    np.testing.assert_allclose(out, total * bias, atol=1e-5)


def test_dynamic_shapes_are_fixed_and_shape_arithmetic_folds(tmp_path):
    # Reshape(x, [N, -1]) with N read from Shape(x) at run time, as exporters write it.
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array([0], np.int64), "axes"),
                    numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = helper.make_graph(nodes, "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", -1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "?"])], initializers)
    source = save(make_model(graph, 13), tmp_path / "fold.onnx")

    model, report = clean(source, {"x": [1, 3, 4, 4]}, log=quiet)

    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 4, 4]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 48]
    assert [node.op_type for node in model.graph.node] == ["Reshape"]
    steps = {step["step"]: step for step in report["steps"]}
    assert steps["static shapes"]["shapes"] == {"x": [1, 3, 4, 4]}
    assert steps["load"]["nodes"] == 5 and steps["fold constants"]["nodes"] == 1
    assert steps["shape inference"]["mode"] == "strict" and steps["check"]["mode"] == "strict"
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    np.testing.assert_array_equal(run(model, {"x": x})[0], x.reshape(1, 48))


def test_subgraph_names_follow_the_outer_graph(tmp_path):
    then_branch = helper.make_graph([helper.make_node("Relu", ["x@in"], ["then@out"], name="then@relu")], "then", [],
                                    [helper.make_tensor_value_info("then@out", TensorProto.FLOAT, [1, 4])])
    else_branch = helper.make_graph([helper.make_node("Neg", ["x@in"], ["else@out"], name="else@neg")], "else", [],
                                    [helper.make_tensor_value_info("else@out", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph([helper.make_node("If", ["cond"], ["y@out"], name="branch@if", then_branch=then_branch, else_branch=else_branch)], "if",
                              [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                               helper.make_tensor_value_info("x@in", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y@out", TensorProto.FLOAT, [1, 4])])
    source = save(make_model(graph, 17), tmp_path / "if.onnx")

    model, report = clean(source, {}, log=quiet)

    tensors, nodes = all_names(model)
    assert all(VALID_NAME.match(name) for name in tensors | nodes), sorted(tensors | nodes)
    branch = model.graph.node[0].attribute[0].g
    assert list(branch.node[0].input) == ["x_in"], "a subgraph reads the renamed outer tensor"
    assert report["renamed"]["inputs"] == {"x@in": "x_in"} and report["renamed"]["outputs"] == {"y@out": "y_out"}
    x = np.array([[-1, 2, -3, 4]], np.float32)
    for cond in (True, False):
        np.testing.assert_array_equal(run(model, {"cond": np.array(cond), "x_in": x})[0], run(source, {"cond": np.array(cond), "x@in": x})[0])


def test_same_bytes_twice_and_in_fresh_processes(tmp_path):
    source = names_model(tmp_path / "names.onnx")
    first, _ = clean(source, {"input:0": [2, 4]}, log=quiet)
    second, _ = clean(source, {"input:0": [2, 4]}, log=quiet)
    digest = hashlib.sha256(first.SerializeToString()).hexdigest()
    assert hashlib.sha256(second.SerializeToString()).hexdigest() == digest
    script = ("import hashlib, sys; from targets.graph import clean; "
              f"m, _ = clean({str(source)!r}, {{'input:0': [2, 4]}}, log=lambda line: None); "
              "print(hashlib.sha256(m.SerializeToString()).hexdigest())")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
        assert done.stdout.split()[-1] == digest


def test_external_data_is_read_from_the_models_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    weight = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight])
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(make_model(graph, 17), str(folder / "m.onnx"),
              save_as_external_data=True, location="m.weights", size_threshold=0)
    monkeypatch.chdir(tmp_path)  # not the model's folder

    model, _ = clean(folder / "m.onnx", {}, log=quiet)

    assert not any(onnx.external_data_helper.uses_external_data(init) for init in model.graph.initializer)
    x = rng.standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(run(model, {"x": x})[0], x @ numpy_helper.to_array(weight), rtol=1e-5, atol=1e-5)


def conv_model(path: Path, opset: int) -> Path:
    """A Conv with bias, the node ONNX Runtime's per-channel quantizer gives an axis."""
    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "conv@w")
    bias = numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32) * 0.1, "conv@b")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "conv@w", "conv@b"], ["c"], name="Conv@0", pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["y"], name="Relu@0")], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, -1, -1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 8, -1, -1])], [weight, bias])
    return save(make_model(graph, opset, ir_version=7), path)


def test_min_opset_lets_onnxruntimes_per_channel_quantizer_make_a_loadable_model(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = conv_model(tmp_path / "conv11.onnx", opset=11)
    model, report = clean(source, {"x": [1, 3, 16, 16]}, log=quiet, min_opset=PER_CHANNEL_QUANTIZER_MIN_OPSET)
    assert {"step": "opset", "nodes": 2, "from": 11, "to": 13} in report["steps"]
    cleaned = save(model, tmp_path / "clean.onnx")

    rng = np.random.default_rng(4)
    samples = iter([{"x": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(4)])

    class Reader:
        def get_next(self):
            return next(samples, None)

    prepared, quantized = tmp_path / "prepared.onnx", tmp_path / "int8.onnx"
    quant_pre_process(str(cleaned), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)

    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    int8, fp32 = run(quantized, {"x": x})[0].ravel(), run(source, {"x": x})[0].ravel()
    assert float(int8 @ fp32 / (np.linalg.norm(int8) * np.linalg.norm(fp32))) > 0.99


def test_ir_version_is_capped_before_folding(tmp_path):
    source = conv_model(tmp_path / "conv.onnx", opset=17)
    model = onnx.load(str(source))
    model.ir_version = 12  # what onnx 1.19 writes; ONNX Runtime 1.23 reads <= 11
    save(model, source)
    capped, report = clean(source, {"x": [1, 3, 8, 8]}, log=quiet, max_ir_version=10)
    assert capped.ir_version == 10
    assert [(step["from"], step["to"]) for step in report["steps"] if step["step"] == "ir version"] == [(12, 10)]
    assert report["steps"][1]["step"] == "ir version", "capped right after loading"
    fold = next(step for step in report["steps"] if step["step"] == "fold constants")
    assert fold["with"] != "none", fold


def test_without_onnxsim_onnxruntime_folds_and_keeps_only_used_domains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # an image without onnx-simplifier
    model, report = clean(conv_model(tmp_path / "conv.onnx", opset=13), {"x": [1, 3, 8, 8]}, log=quiet)
    fold = next(step for step in report["steps"] if step["step"] == "fold constants")
    assert fold["with"].startswith("onnxruntime ") and "ORT_ENABLE_BASIC" in fold["with"]
    assert fold["why"] == "skipped: onnxsim not in this image"
    # ONNX Runtime stamps com.microsoft, ai.onnx.ml, ... into what it saves; none is used.
    assert [(entry.domain, entry.version) for entry in model.opset_import] == [("", 13)]
    assert {node.domain for node in model.graph.node} == {""}


def test_onnxsim_folds_when_the_image_has_it(tmp_path):
    onnxsim = pytest.importorskip("onnxsim")
    model, report = clean(conv_model(tmp_path / "conv.onnx", opset=13), {"x": [1, 3, 8, 8]}, log=quiet)
    fold = next(step for step in report["steps"] if step["step"] == "fold constants")
    assert fold["with"] == f"onnxsim {onnxsim.__version__}"


def test_a_graph_no_folder_can_load_is_kept_unfolded_and_says_why(tmp_path, monkeypatch):
    # onnxsim passes unknown ops through (it would "fold" this graph), so the image here is
    # one without it, like images/onnx and images/rk3588, where ONNX Runtime is the folder.
    monkeypatch.setitem(sys.modules, "onnxsim", None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["a"], name="r"),
                               helper.make_node("Mystery", ["a"], ["b"], name="m", domain="com.example"),
                               helper.make_node("Neg", ["b"], ["y"], name="n")], "custom",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    source = save(make_model(graph, 17, extra_opsets=[helper.make_opsetid("com.example", 1)]), tmp_path / "c.onnx")
    lines = []
    model, report = clean(source, {}, log=lines.append)
    fold = next(step for step in report["steps"] if step["step"] == "fold constants")
    assert fold["with"] == "none" and "Mystery" in fold["why"] and fold["why"].endswith("the graph is kept unfolded")
    assert [node.op_type for node in model.graph.node] == ["Relu", "Mystery", "Neg"]
    assert any(line.startswith("graph clean-up: fold constants: 3 nodes (with none") for line in lines)


def test_local_functions_are_inlined(tmp_path):
    function = helper.make_function("com.example", "DoubleRelu", ["a"], ["b"],
                                    [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Add", ["r", "r"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("DoubleRelu", ["x"], ["y"], name="call", domain="com.example")], "fn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    source = save(make_model(graph, 17, functions=[function], extra_opsets=[helper.make_opsetid("com.example", 1)]), tmp_path / "fn.onnx")
    model, report = clean(source, {}, log=quiet)
    assert not model.functions and {node.domain for node in model.graph.node} == {""}
    assert any(step["step"] == "inline local functions" for step in report["steps"])
    x = np.array([[-1, 2, -3, 4]], np.float32)
    np.testing.assert_array_equal(run(model, {"x": x})[0], np.maximum(x, 0) * 2)


def test_shapes_that_do_not_fit_are_refused(tmp_path):
    source = conv_model(tmp_path / "conv.onnx", opset=13)
    with pytest.raises(ValueError, match=r"input 'x' has dynamic dims .*give its static shape"):
        clean(source, {}, log=quiet)
    with pytest.raises(ValueError, match=r"input 'x' is declared \['\?', 3, '\?', '\?'\]; shape \[1, 3, 8\] does not fit"):
        clean(source, {"x": [1, 3, 8]}, log=quiet)
    with pytest.raises(ValueError, match=r"input 'x' is declared .*shape \[1, 4, 8, 8\] does not fit"):
        clean(source, {"x": [1, 4, 8, 8]}, log=quiet)
    with pytest.raises(ValueError, match=r"input_shapes names \['images'\]"):
        clean(source, {"images": [1, 3, 8, 8]}, log=quiet)
