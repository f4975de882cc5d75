"""digits-embed: the digits CNN cut at its penultimate tensor. The cut is checked on a hand-made graph
and on the real one (its embedding, scored by the digits model's last layer, gives the digits model's
logits), and the example folder is one the embed task takes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeship.examples import BUILDERS, DEFAULT, classic, embed, example_request
from edgeship_runtime.tasks import against_labels, validate


def _run(path, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: row[None]})[0] for row in inputs])


def _mlp(path) -> dict:
    """x[1, 3] -> Gemm -> Relu -> Gemm -> y[1, 2], with known weights."""
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(size=(4, 3)).astype(np.float32), "b1": rng.normal(size=4).astype(np.float32),
               "w2": rng.normal(size=(2, 4)).astype(np.float32), "b2": np.zeros(2, np.float32)}
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["hidden"], transB=1), helper.make_node("Relu", ["hidden"], ["features"]),
         helper.make_node("Gemm", ["features", "w2", "b2"], ["y"], transB=1)],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return weights


def test_the_cut_keeps_the_features_the_last_layer_reads(tmp_path):
    weights = _mlp(tmp_path / "mlp.onnx")
    assert embed.penultimate(onnx.load(str(tmp_path / "mlp.onnx"))) == "features"
    assert embed.cut_at_penultimate(tmp_path / "mlp.onnx", tmp_path / "cut.onnx") == "features"
    cut = onnx.load(str(tmp_path / "cut.onnx"))
    assert [node.op_type for node in cut.graph.node] == ["Gemm", "Relu"] and cut.graph.output[0].name == "embedding"
    assert [d.dim_value for d in cut.graph.output[0].type.tensor_type.shape.dim] == [1, 4]
    x = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "cut.onnx", x), np.maximum(x @ weights["w1"].T + weights["b1"], 0), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The digits example and digits-embed, each trained once for the module (about 10 s each)."""
    root = tmp_path_factory.mktemp("embed")
    return classic.build_digits(root / "digits"), embed.build_digits_embed(root / "digits-embed")


def test_the_embedding_scored_by_the_digits_last_layer_is_the_digits_logits(built):
    digits, folder = built
    with np.load(folder / "eval.npz") as data:
        inputs = data["input"][:40]
    model = onnx.load(str(digits / "model.onnx"))
    last = model.graph.node[-1]
    weight, bias = (numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == name)) for name in last.input[1:])
    features = _run(folder / "model.onnx", inputs)
    assert features.shape == (40, 64) and (features >= 0).all()  # after the ReLU
    np.testing.assert_allclose(features @ weight.T + bias, _run(digits / "model.onnx", inputs), rtol=1e-4, atol=1e-4)


def test_the_folder_is_an_embed_example_with_digit_labels(built):
    _, folder = built
    assert sorted(path.name for path in folder.iterdir()) == ["calib", "eval.npz", "metadata.json", "model.onnx", "preprocess.json", "task.json"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["name"] == "digits-embed" and metadata["output"] == {"name": "embedding", "shape": [1, 64]}
    assert metadata["source"]["example"] == "digits" and metadata["source"]["cut_at"] == "/7/Relu_output_0"
    assert len(list((folder / "calib").glob("*.npy"))) == 100
    record = validate(json.loads((folder / "task.json").read_text()), [{"name": "embedding", "shape": [1, 64]}], None, "task.json")
    with np.load(folder / "eval.npz") as data:
        inputs, labels = data["input"], data["labels"]
    assert inputs.shape == (360, 1, 8, 8) and labels.dtype.kind == "i" and sorted(set(labels.tolist())) == list(range(10))
    features = _run(folder / "model.onnx", inputs)
    figures = against_labels(record, [{"embedding": row[None]} for row in features], labels)
    assert figures["retrieval_top1"] >= 0.95 and figures["queries"] == 360  # real features: nearest others are the same digit


def test_it_is_registered_and_its_request_takes_the_task_file(built, tmp_path):
    _, folder = built
    assert "digits-embed" in BUILDERS and "digits-embed" in DEFAULT
    request = example_request(folder, "onnx", "int8", tmp_path, needs_calibration=True)
    assert request.model == folder / "model.onnx" and request.task == str(folder / "task.json") and request.labels is None
    assert request.calib == folder / "calib" and request.eval == folder / "eval.npz" and request.name == "digits-embed"
