"""jetson target in its image: TensorRT-ready ONNX (static shapes, folded, simplified), the
TensorRT op check, packaged int8 calibration, ONNX Runtime references, and the labelled CPU
fallback of the board runtime; on the real example models and small crafted ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support import run_cli


@pytest.fixture(scope="session")
def jetson_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("jetson"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def convert(example_dirs, example, quant, out, docker_client, **extra):
    from edgeship.convert import Request
    from edgeship.convert import convert as run_convert

    folder = example_dirs[example]
    return run_convert(Request(target="jetson", model=folder / "model.onnx", quant=quant, out=out,
                               calib=folder / "calib" if quant == "int8" else None, eval=folder / "eval.npz",
                               labels=folder / "labels.txt", **extra), client=docker_client)


@pytest.mark.parametrize("example,quant", [("digits", "fp16"), ("digits", "int8"), ("mobilenetv2", "fp16"), ("mobilenetv2", "int8")])
def test_both_examples_give_sanitized_onnx_op_report_calibration_and_references(jetson_image, example_dirs, docker_client, tmp_path, example, quant):
    artifact = convert(example_dirs, example, quant, tmp_path, docker_client)
    manifest = manifest_of(artifact)
    assert manifest["runtime_backend"] == "tensorrt" and manifest["artifact"]["file"] == "model.onnx"
    # the cleaned graph: static shapes on every input, and the model still checks
    model = onnx.load(str(artifact / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    for value in model.graph.input:
        assert all(dim.HasField("dim_value") for dim in value.type.tensor_type.shape.dim), value
    steps = json.loads((artifact / "sanitize.json").read_text())["steps"]
    names = [s["step"] for s in steps]
    assert names[:2] == ["load", "static shapes"] and "fold constants" in names and names[-1] == "check", names
    assert manifest["graph"]["steps"] == json.loads((artifact / "sanitize.json").read_text())["steps"] or manifest["graph"]["steps"]
    if example == "mobilenetv2":  # the exported MobileNetV2 carries shape arithmetic that folds away
        assert steps[-1]["nodes"] < steps[0]["nodes"]
    ops = json.loads((artifact / "ops.json").read_text())
    assert ops["tensorrt"]["supported"] and ops["tensorrt"]["tensorrt"] == "10.3"
    assert set(ops["tensorrt"]["ops"]) == {node.op_type for node in model.graph.node}
    config = json.loads((artifact / "tensorrt.json").read_text())
    assert config["precision"] == quant and config["workspace_mib"] == 1024
    if quant == "int8":
        with np.load(artifact / "calibration.npz") as data:
            count = len(list((example_dirs[example] / "calib").glob("*.npy")))
            assert data["input"].shape[0] == count == config["calibration"]["samples"]
            assert data["input"].shape[1:] == tuple(manifest["inputs"][0]["shape"][1:])
        assert "calibration.npz" in manifest["files"]
    else:
        assert config["calibration"] is None and not (artifact / "calibration.npz").exists()
    # references from ONNX Runtime; the sanitized model computes the same on its CPU provider
    accuracy = manifest["accuracy"]
    assert accuracy["passed"] and "ONNX Runtime" in accuracy["measured_with"]
    assert accuracy["outputs"]["logits"]["cosine_min"] > 0.99999 and accuracy["outputs"]["logits"]["top1_agreement"] == 1.0
    assert manifest["reference"]["samples"] > 0 and (artifact / "reference" / "outputs.npz").is_file()


def test_the_cli_prints_the_op_check_and_what_the_accuracy_measured(jetson_image, example_dirs, tmp_path):
    digits = example_dirs["digits"]
    result = run_cli("convert", "--target", "jetson", "--model", str(digits / "model.onnx"), "--eval", str(digits / "eval.npz"),
                     "--labels", str(digits / "labels.txt"), "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    assert "edgeship: TensorRT 10.3 op check: 5 op types, all supported" in result.stdout
    assert "accuracy measured with the cleaned ONNX on ONNX Runtime's CPU provider" in result.stdout
    assert "accuracy against the eval labels (360 samples): fp32 97.78%, converted 97.78%" in result.stdout


def test_a_model_with_an_op_tensorrt_cannot_import_stops_before_any_artifact(jetson_image, tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="relu0"), helper.make_node("Det", ["r"], ["y"], name="det0")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "det.onnx"))
    out = tmp_path / "artifacts"
    result = run_cli("convert", "--target", "jetson", "--model", str(tmp_path / "det.onnx"), "--input-shape", "x:1,3,3", "--out", str(out))
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "TensorRT 10.3 (JetPack 6.1/6.2) cannot import: Det (not supported by TensorRT's ONNX parser; node 'det0')" in error[0]
    assert not out.exists()


def test_dynamic_shapes_are_fixed_and_shape_arithmetic_folds_away(jetson_image, tmp_path):
    """batch is symbolic; Shape -> Gather -> Concat -> Reshape computes a flatten at run time.
    With the batch fixed, the whole chain becomes a constant and disappears."""
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(12, 1) / 10, "w")
    index = numpy_helper.from_array(np.array(0, np.int64), "zero")
    minus_one = numpy_helper.from_array(np.array([-1], np.int64), "minus_one")
    nodes = [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]), helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["y"])]
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], [weight, index, minus_one, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "flat.onnx"))
    result = run_cli("convert", "--target", "jetson", "--model", str(tmp_path / "flat.onnx"), "--input-shape", "x:1,3,4",
                     "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    artifact = Path(result.stdout.strip().splitlines()[-1])
    sanitized = onnx.load(str(artifact / "model.onnx"))
    assert [d.dim_value for d in sanitized.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 4]
    assert [node.op_type for node in sanitized.graph.node] == ["Reshape", "MatMul"]
    steps = json.loads((artifact / "sanitize.json").read_text())["steps"]
    assert steps[0]["nodes"] == 6 and steps[-1]["nodes"] == 2
    assert manifest_of(artifact)["accuracy"]["outputs"]["y"]["cosine_min"] > 0.99999


def test_same_inputs_give_the_same_bytes(jetson_image, example_dirs, docker_client, tmp_path):
    first = convert(example_dirs, "mobilenetv2", "int8", tmp_path / "one", docker_client)
    second = convert(example_dirs, "mobilenetv2", "int8", tmp_path / "two", docker_client)
    assert manifest_of(first)["files"] == manifest_of(second)["files"]


def test_the_board_runtime_without_a_gpu_runs_the_same_onnx_on_the_cpu_labelled(jetson_image, example_dirs, docker_client, tmp_path, capsys):
    artifact = convert(example_dirs, "digits", "fp16", tmp_path, docker_client)
    from edgeship_runtime.detect import detect

    if "nvidia_gpu" in detect()["available"]:
        pytest.skip("this machine has an NVIDIA GPU: the fallback path is not taken")
    from edgeship_runtime.cli import main

    assert main(["check", str(artifact)]) == 2
    refused = capsys.readouterr().err
    assert "lacks" in refused and "--allow-cpu-fallback" in refused and "Traceback" not in refused

    out = tmp_path / "check.json"
    assert main(["check", str(artifact), "--allow-cpu-fallback", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["fallback"]["cpu_fallback"] and report["fallback"]["used"]["backend"] == "onnxruntime"
    assert report["fallback"]["used"]["artifact_sha256"] == manifest_of(artifact)["artifact"]["sha256"]


def test_gpus_without_the_tensorrt_image_lock_says_how_to_make_it(jetson_image, example_dirs, tmp_path):
    from tests.support import ROOT

    if (ROOT / "images/jetson-tensorrt/requirements.lock").exists():
        pytest.skip("the jetson-tensorrt lock exists here (made on a host that reaches NVIDIA's index)")
    result = run_cli("convert", "--target", "jetson", "--model", str(example_dirs["digits"] / "model.onnx"), "--gpus", "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("edgeship: error: " + str(ROOT / "images/jetson-tensorrt/requirements.lock") + " is missing; run "
                                     "`invoke images.lock --target jetson-tensorrt` on a host that reaches https://pypi.nvidia.com to create it")
    assert not (tmp_path / "a").exists()
