"""Typed and frozen inputs through the real images (issue 27, items 2 and 3).

Frozen: a scalar int64 `mode` choosing a branch through If, converted with --input-value mode=1
for onnx and openvino; the graph clean-up's onnxsim folds the If away, the artifact no longer
takes `mode`, and its outputs are the taken branch's. Typed: int64 token ids into an embedding,
and a uint8 image beside a bool mask, carried as they are by onnx and openvino (the references
drawn by dtype, or an eval set checked by dtype), and run by the board runtime's check."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeship.convert import Request, convert
from tests.support.typed_models import THEN_SCALE, if_model, image_model, token_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("typed")
    if_model(folder / "if.onnx")
    token_model(folder / "tokens.onnx")
    image_model(folder / "image.onnx")
    rng = np.random.default_rng(5)
    np.savez(folder / "image_eval.npz", image=rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8), mask=rng.random((6, 4)) < 0.5)
    return folder


def _manifest(artifact) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def _graphs(graph):
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _graphs(attribute.g)


@pytest.mark.parametrize("target,quant", [("onnx", "fp32"), ("openvino", "fp16")])
def test_a_frozen_mode_folds_its_if_away(models, docker_client, tmp_path, target, quant):
    artifact = convert(Request(target=target, model=models / "if.onnx", quant=quant, input_values=["mode=1"], out=tmp_path),
                       client=docker_client)
    manifest = _manifest(artifact)
    assert [spec["name"] for spec in manifest["inputs"]] == ["x"]  # the board feeds x only
    assert manifest["input_values"] == {"mode": {"dtype": "int64", "shape": [], "value": [1]}}
    assert any(step["step"] == "freeze inputs" for step in manifest["graph"]["steps"])
    assert "If" not in manifest["ops"], manifest["ops"]
    assert manifest["accuracy"]["passed"], manifest["accuracy"]
    # the fp32 reference is the source fed mode=1: the then-branch's x * 2
    with np.load(artifact / "reference" / "inputs.npz") as inputs, np.load(artifact / "reference" / "outputs.npz") as outputs:
        assert sorted(inputs.files) == ["x"]
        np.testing.assert_allclose(outputs["y"], inputs["x"] * np.float32(THEN_SCALE), rtol=1e-6)
    if target == "onnx":
        import onnx
        import onnxruntime

        model = onnx.load(str(artifact / "model.onnx"))  # the cleaned graph itself
        assert not [node for graph in _graphs(model.graph) for node in graph.node if node.op_type == "If"]
        x = np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)
        session = onnxruntime.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
        assert [value.name for value in session.get_inputs()] == ["x"]
        np.testing.assert_allclose(session.run(["y"], {"x": x})[0], x * np.float32(THEN_SCALE), rtol=1e-6)
        check = subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", "check", str(artifact)], capture_output=True, text=True,
                               timeout=300)
        assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr


@pytest.mark.parametrize("target,quant", [("onnx", "fp32"), ("openvino", "fp16")])
def test_int64_token_ids_are_carried(models, docker_client, tmp_path, target, quant):
    artifact = convert(Request(target=target, model=models / "tokens.onnx", quant=quant, out=tmp_path), client=docker_client)
    manifest = _manifest(artifact)
    assert manifest["inputs"][0]["dtype"] == "int64"
    assert manifest["reference"]["source"].startswith("seeded random (no data given)")
    assert manifest["accuracy"]["passed"], manifest["accuracy"]
    with np.load(artifact / "reference" / "inputs.npz") as inputs:
        ids = inputs["ids"]
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 16 and len(np.unique(ids)) > 4  # drawn in [0, 16)
    assert manifest["artifact_io"]["tensors"]["inputs"][0]["dtype"] == "int64"  # the artifact itself takes int64


@pytest.mark.parametrize("target,quant", [("onnx", "fp32"), ("openvino", "fp16")])
def test_a_uint8_image_and_a_bool_mask_are_carried_with_an_eval_set(models, docker_client, tmp_path, target, quant):
    artifact = convert(Request(target=target, model=models / "image.onnx", quant=quant, eval=models / "image_eval.npz", out=tmp_path),
                       client=docker_client)
    manifest = _manifest(artifact)
    assert {spec["name"]: spec["dtype"] for spec in manifest["inputs"]} == {"image": "uint8", "mask": "bool"}
    assert manifest["accuracy"]["passed"], manifest["accuracy"]
    with np.load(artifact / "reference" / "inputs.npz") as inputs, np.load(models / "image_eval.npz") as given:
        assert inputs["image"].dtype == np.uint8 and inputs["mask"].dtype == np.bool_
        np.testing.assert_array_equal(inputs["image"], given["image"])
    if target == "onnx":
        check = subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", "check", str(artifact)], capture_output=True, text=True,
                               timeout=300)
        assert check.returncode == 0 and json.loads(check.stdout)["passed"], check.stdout + check.stderr
