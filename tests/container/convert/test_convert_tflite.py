"""`invoke convert --target tflite` end to end on the example models, in the real image."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from edgeship.errors import EdgeshipError
from edgeship.images.locks import load_spec, pinned_packages
from edgeship_runtime.files import sha256_file
from tests.support import run_cli, tiny_cnn

QUANTS = ["fp32", "fp16", "dynamic", "int8"]


def manifest_of(artifact):
    return json.loads((artifact / "manifest.json").read_text())


# digits in every mode; MobileNetV2 (a real network's depth, random weights) in the modes that
# differ most, fp32 and int8 (fp16 and dynamic take the same code path there, at 36 s each)
@pytest.mark.parametrize("example,quant", [("digits", q) for q in QUANTS] + [("mobilenetv2", "fp32"), ("mobilenetv2", "int8")])
def test_conversion_writes_a_complete_verified_artifact(conversions, tflite_image, example_dirs, example, quant):
    artifact = conversions(example, quant)
    manifest = manifest_of(artifact)
    assert manifest["target"] == "tflite" and manifest["options"]["quant"] == quant
    source = example_dirs[example] / "model.onnx"
    assert manifest["source"] == {"file": "model.onnx", "format": "onnx", "sha256": sha256_file(source)}
    assert manifest["artifact"]["file"] == "model.tflite"
    assert manifest["artifact"]["sha256"] == sha256_file(artifact / "model.tflite")
    for relative, digest in manifest["files"].items():
        assert sha256_file(artifact / relative) == digest, relative
    # the toolchain versions were read inside the image and agree with its lock file
    pins = pinned_packages(load_spec("tflite").lock)
    for package in ("onnx2tf", "tensorflow", "onnx", "onnxruntime", "numpy"):
        assert manifest["toolchain"][package] == pins[package]
    assert manifest["image"]["id"] == tflite_image.id
    assert manifest["image"]["lock_sha256"] == load_spec("tflite").lock_sha256()
    assert (manifest["calibration"] is not None) == (quant == "int8")
    assert manifest["preprocess"]["resize"] == "center_crop" and manifest["preprocess"]["layout"] == "NCHW"  # from preprocess.json, completed
    figures = manifest["accuracy"]["outputs"]["logits"]
    for key in ("cosine_min", "max_abs_error", "top1_agreement"):
        assert figures[key] is not None
    ops = json.loads((artifact / "ops.json").read_text())
    assert ops["op_count"] > 0 and "CONV_2D" in ops["ops"] and ops == {**ops, "ops": manifest["ops"]}
    with np.load(artifact / "reference" / "inputs.npz") as inputs, np.load(artifact / "reference" / "outputs.npz") as outputs:
        assert inputs["input"].shape[0] == outputs["logits"].shape[0] == manifest["reference"]["samples"]
    if quant in ("fp32", "fp16") or example == "digits":
        assert manifest["accuracy"]["passed"], figures
    else:
        # MobileNetV2 has random weights: its logits are nearly tied, so top-1 agreement of a
        # quantized model says little; the drift itself must still be small.
        assert figures["cosine_min"] > {"dynamic": 0.98, "int8": 0.9}[quant], figures
    if quant == "int8":
        io_types = {tensor["dtype"] for tensor in ops["inputs"] + ops["outputs"]}
        assert io_types == {"int8"}


def test_digits_int8_labelled_accuracy_is_within_two_points_of_fp32(conversions):
    fp32 = manifest_of(conversions("digits", "fp32"))["accuracy"]["labelled"]
    int8 = manifest_of(conversions("digits", "int8"))["accuracy"]["labelled"]
    print(f"digits held-out accuracy: fp32 {int8['fp32']['accuracy']:.4f} ({int8['samples']} samples), int8 {int8['converted']['accuracy']:.4f}")
    assert int8["samples"] == fp32["samples"] == 360
    assert fp32["converted"]["accuracy"] == pytest.approx(fp32["fp32"]["accuracy"], abs=1e-9)
    assert int8["fp32"]["accuracy"] > 0.9
    assert abs(int8["converted"]["accuracy"] - int8["fp32"]["accuracy"]) <= 0.02


def test_uint8_model_io(conversions):
    artifact = conversions("digits", "int8", options=(("io_dtype", "uint8"),))
    ops = json.loads((artifact / "ops.json").read_text())
    assert {tensor["dtype"] for tensor in ops["inputs"] + ops["outputs"]} == {"uint8"}
    assert manifest_of(artifact)["accuracy"]["passed"]


@pytest.mark.parametrize("example,quant", [("digits", q) for q in QUANTS] + [("mobilenetv2", "int8")])
def test_same_inputs_give_the_same_bytes_in_clean_containers(conversions, example, quant):
    first, second = conversions(example, quant, "a"), conversions(example, quant, "b")
    assert first != second  # two separate conversions, each in its own container
    assert manifest_of(first)["artifact"]["sha256"] == manifest_of(second)["artifact"]["sha256"]
    assert manifest_of(first)["files"] == manifest_of(second)["files"]


def test_cache_returns_the_artifact_without_a_container(conversions, example_dirs, docker_client, monkeypatch):
    import edgeship.convert as convert_module
    import edgeship.convert.run as run_module

    artifact = conversions("digits", "fp16")
    folder = example_dirs["digits"]

    def no_container(*args, **kwargs):
        raise AssertionError("the cached path started a container")

    monkeypatch.setattr(run_module, "run_worker", no_container)
    request = convert_module.Request(target="tflite", model=folder / "model.onnx", quant="fp16", eval=folder / "eval.npz",
                                     labels=folder / "labels.txt", preprocess=folder / "preprocess.json", out=artifact.parent)
    assert convert_module.convert(request, client=docker_client) == artifact
    # a different option is a different artifact, and does need a container
    request.quant, request.calib, request.options = "int8", folder / "calib", {"io_dtype": "float32"}
    with pytest.raises(AssertionError, match="started a container"):
        convert_module.convert(request, client=docker_client)
    assert sorted(p.name for p in artifact.parent.iterdir() if p.name.startswith(".staging")) == []



def test_a_toolchain_failure_is_remembered_for_its_key_and_tried_again_when_anything_changes(tflite_image, example_dirs, docker_client,
                                                                                            tmp_path, monkeypatch):
    """A toolchain that raised (exit 3) is not run again for the same key; another key, `fresh`,
    and a failure that may not repeat (a kill, exit 137) all run the container."""
    import edgeship.convert as convert_module
    import edgeship.convert.run as run_module
    from edgeship.errors import ToolchainFailed

    started = []

    def toolchain_failure_stand_in(client, image_tag, mounts, log_path, gpus=False, command=None):  # the worker's exit, not a conversion
        started.append(image_tag)
        log_path.write_text("Traceback ...\nIndexError: list index out of range\n")
        raise ToolchainFailed(f"conversion failed in {image_tag} (exit {status}): ToolkitError: IndexError", status, log_path)

    monkeypatch.setattr(run_module, "run_worker", toolchain_failure_stand_in)
    folder, out = example_dirs["digits"], tmp_path / "artifacts"
    request = convert_module.Request(target="tflite", model=folder / "model.onnx", quant="fp16", eval=folder / "eval.npz", out=out)
    status = 3
    with pytest.raises(ToolchainFailed):
        convert_module.convert(request, client=docker_client)
    assert len(started) == 1 and not [p for p in out.iterdir() if p.name != ".failed"]
    with pytest.raises(EdgeshipError, match=r"ToolkitError: IndexError \(the same request failed at .* `--fresh` tries again\); log: .*\.failed/"):
        convert_module.convert(request, client=docker_client)
    assert len(started) == 1  # no container for a remembered failure
    assert "IndexError" in next((out / ".failed").glob("*.log")).read_text()
    with pytest.raises(ToolchainFailed):
        convert_module.convert(request, client=docker_client, fresh=True)
    request.quant = "fp32"  # another key
    with pytest.raises(ToolchainFailed):
        convert_module.convert(request, client=docker_client)
    assert len(started) == 3
    status, request.quant = 137, "dynamic"  # killed: may not happen twice, so not remembered
    for _ in range(2):
        with pytest.raises(ToolchainFailed):
            convert_module.convert(request, client=docker_client)
    assert len(started) == 5

def test_cli_converts_a_dynamic_model_with_input_shape_and_prints_the_directory_last(tflite_image, tmp_path):
    model = tiny_cnn(tmp_path / "dyn.onnx", batch="batch")
    out = tmp_path / "artifacts"
    result = run_cli("convert", "--target", "tflite", "--model", str(model), "--input-shape", "input:1,1,8,8", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    artifact = out / result.stdout.strip().splitlines()[-1].split("/")[-1]
    assert str(artifact) == result.stdout.strip().splitlines()[-1] or artifact.exists()
    manifest = manifest_of(artifact)
    assert manifest["options"]["input_shapes"] == {"input": [1, 1, 8, 8]}
    assert manifest["reference"]["source"].startswith("seeded random")
    assert manifest["accuracy"]["passed"]
    assert [p.name for p in out.iterdir()] == [artifact.name]
    started = time.monotonic()
    again = run_cli("convert", "--target", "tflite", "--model", str(model), "--input-shape", "input:1,1,8,8", "--out", str(out))
    assert again.stdout.strip().splitlines()[-1] == result.stdout.strip().splitlines()[-1]
    print(f"cached CLI call: {time.monotonic() - started:.2f} s (interpreter start included)")


def test_a_tflite_source_has_its_weights_restored_not_requantized(example_dirs, docker_client, tmp_path):
    """MediaPipe's hand landmarks (fp16 weights behind DEQUANTIZE ops) on the tflite target: fp32
    widens them (no DEQUANTIZE left, outputs the source's exactly), fp16 keeps the source's bytes,
    the fp32 artifact as a source goes back to fp16 weights, each byte for byte the same again;
    int8 is one line on the host before any container starts."""
    from edgeship.convert import Request, convert
    from edgeship.examples import example_request

    folder = example_dirs["hand-landmark"]
    source = folder / "model.tflite"
    widened = convert(example_request(folder, "tflite", "fp32", tmp_path / "a", False), client=docker_client)
    again = convert(example_request(folder, "tflite", "fp32", tmp_path / "b", False), client=docker_client)
    ops = json.loads((widened / "ops.json").read_text())
    manifest = manifest_of(widened)
    assert manifest["source"]["format"] == "tflite" and "DEQUANTIZE" not in ops["ops"] and ops["op_count"] == 167 - 102
    assert manifest["accuracy"]["passed"] and manifest["accuracy"]["metrics"]["pck"] == 1.0
    assert all(figures["max_abs_error"] == 0.0 for figures in manifest["accuracy"]["outputs"].values())
    assert manifest["artifact"]["sha256"] == manifest_of(again)["artifact"]["sha256"]
    kept = convert(example_request(folder, "tflite", "fp16", tmp_path / "a", False), client=docker_client)
    assert manifest_of(kept)["artifact"]["sha256"] == sha256_file(source)
    narrowed = convert(Request(target="tflite", model=widened / "model.tflite", quant="fp16", eval=folder / "eval.npz",
                               task=str(folder / "task.json"), preprocess=folder / "preprocess.json", out=tmp_path / "c"), client=docker_client)
    narrowed_ops = json.loads((narrowed / "ops.json").read_text())
    assert narrowed_ops["ops"]["DEQUANTIZE"] == 102 and manifest_of(narrowed)["accuracy"]["passed"]
    assert narrowed_ops["file_size"] < 0.55 * ops["file_size"]
    with pytest.raises(EdgeshipError, match=r"a tflite source converts to --quant fp32 or fp16 on target tflite, not int8"):
        convert(example_request(folder, "tflite", "int8", tmp_path / "d", True), client=docker_client)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
