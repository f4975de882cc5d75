"""rk3588 target: Rockchip's rknn-toolkit2 in its image, the toolkit's x86 simulator for
accuracy, its per-layer analysis and its CPU/NPU placement, on the real example models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT, run_cli


@pytest.fixture(scope="session")
def rk3588_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("rk3588"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_digits_int8_from_the_cli_agrees_with_fp32_and_keeps_the_toolkit_log(rk3588_image, example_dirs, tmp_path):
    digits = example_dirs["digits"]
    out = tmp_path / "artifacts"
    result = run_cli("convert", "--target", "rk3588", "--model", str(digits / "model.onnx"), "--quant", "int8",
                     "--calib", str(digits / "calib"), "--eval", str(digits / "eval.npz"), "--labels", str(digits / "labels.txt"),
                     "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)
    artifact = Path(result.stdout.strip().splitlines()[-1])
    manifest = manifest_of(artifact)
    assert (artifact / "model.rknn").read_bytes()[:4] == b"RKNN"
    assert manifest["toolchain"]["rknn-toolkit2"] == "2.5.0" and manifest["options"]["platform"] == "rk3588"
    figures = manifest["accuracy"]["outputs"]["logits"]
    labelled = manifest["accuracy"]["labelled"]
    fp32, converted = labelled["fp32"]["accuracy"], labelled["converted"]["accuracy"]
    print(f"digits int8 on the RKNN simulator: top-1 agreement {figures['top1_agreement']:.2%}, "
          f"labelled accuracy fp32 {fp32:.2%} -> rknn int8 {converted:.2%} ({labelled['samples']} test samples)")
    assert labelled["samples"] == 360
    assert figures["top1_agreement"] >= 0.98
    assert abs(converted - fp32) <= 0.02
    assert "top-1 agreement with fp32" in result.stdout and "accuracy against the eval labels (360 samples)" in result.stdout
    # the toolkit's own log is kept beside the artifact, but is not part of what ships
    log = (artifact / "rknn-toolkit.log").read_text()
    assert "rknn-toolkit2 version: 2.5.0" in log and "Network Layer Information Table" in log
    assert "rknn-toolkit.log" not in manifest["files"] and "rknn-toolkit.log" in manifest["logs"]
    ops = json.loads((artifact / "ops.json").read_text())
    assert ops["npu_layers"] > 0 and ops["source_ops"]["Conv"] == 2
    assert all(set(layer) == {"id", "op", "name"} for layer in ops["cpu_layers"])
    # the artifact takes NHWC, and says how the runtime lays out the source's NCHW input
    assert manifest["artifact_io"]["mapping"]["inputs"]["input"]["perm"] == [0, 2, 3, 1]


@pytest.mark.parametrize("quant", ["int8", "fp16"])
def test_mobilenetv2_converts_and_explains_a_shortfall_layer_by_layer(rk3588_image, conversions, quant):
    artifact = conversions("mobilenetv2", quant, target="rk3588")
    manifest = manifest_of(artifact)
    figures = manifest["accuracy"]["outputs"]["logits"]
    ops = json.loads((artifact / "ops.json").read_text())
    print(f"mobilenetv2 {quant}: cosine min {figures['cosine_min']:.5f}, top-1 agreement {figures['top1_agreement']:.1%}, "
          f"{ops['op_count']} layers, {ops['npu_layers']} on the NPU, CPU: {[layer['op'] for layer in ops['cpu_layers']]}")
    assert manifest["artifact"]["size"] > 1_000_000 and ops["npu_layers"] > 50
    tolerances = manifest["accuracy"]["tolerances"]
    # the verdict is what the figures say against the tolerances, whichever way it goes
    within = figures["cosine_min"] >= tolerances["min_cosine"] and figures["top1_agreement"] >= tolerances["min_top1_agreement"]
    assert manifest["accuracy"]["passed"] == within, (figures, tolerances)
    # random-weight logits are nearly tied, so top-1 moves easily; the outputs themselves stay close
    assert figures["cosine_min"] >= (0.999 if quant == "fp16" else 0.9), figures
    if quant == "fp16":
        assert manifest["accuracy"]["passed"], figures
    if not manifest["accuracy"]["passed"]:
        per_layer = manifest["accuracy"]["per_layer"]
        table = (artifact / per_layer["file"]).read_text()
        accuracy = json.loads((artifact / "accuracy.json").read_text())
        assert len(accuracy["per_layer"]["layers"]) > 50 and "simulator_error" in table
        print("per-layer analysis, worst single layers:", per_layer["worst_single_layers"][:3])
    else:
        assert not (artifact / "accuracy_analysis.txt").exists()


def test_tflite_input_converts(rk3588_image, conversions, example_dirs, tmp_path, docker_client):
    import numpy as np

    from edgeship.convert import Request, convert

    digits = example_dirs["digits"]
    tflite_artifact = conversions("digits", "fp32", target="tflite")
    tflite = tflite_artifact / "model.tflite"
    # The TFLite model takes NHWC under its tensor name: its calibration and eval data do too.
    name = manifest_of(tflite_artifact)["artifact_io"]["tensors"]["inputs"][0]["name"]
    (tmp_path / "calib").mkdir()
    for path in sorted((digits / "calib").glob("*.npy")):
        np.save(tmp_path / "calib" / path.name, np.load(path).transpose(0, 2, 3, 1))
    with np.load(digits / "eval.npz") as data:
        np.savez(tmp_path / "eval.npz", **{name: data["input"].transpose(0, 2, 3, 1), "labels": data["labels"]})
    artifact = convert(Request(target="rk3588", model=tflite, quant="int8", calib=tmp_path / "calib", eval=tmp_path / "eval.npz",
                               labels=digits / "labels.txt", out=tmp_path / "artifacts", name="digits-from-tflite"), client=docker_client)
    manifest = manifest_of(artifact)
    (figures,) = manifest["accuracy"]["outputs"].values()
    labelled = manifest["accuracy"]["labelled"]
    fp32, converted = labelled["fp32"]["accuracy"], labelled["converted"]["accuracy"]
    print(f"digits TFLite -> rknn int8: top-1 agreement {figures['top1_agreement']:.2%}, labelled {fp32:.2%} -> {converted:.2%}")
    assert manifest["source"]["format"] == "tflite"
    assert figures["top1_agreement"] >= 0.98 and abs(converted - fp32) <= 0.02
    assert manifest["artifact_io"]["mapping"]["inputs"][name]["perm"] is None  # TFLite is NHWC already


def test_mean_and_std_folded_into_the_model(rk3588_image, conversions):
    """digits takes pixel/16: with mean 0 and std 16 in the model, the board feeds raw pixels."""
    artifact = conversions("digits", "int8", options=(("mean", "0"), ("std", "16")), target="rk3588")
    manifest = manifest_of(artifact)
    assert manifest["artifact_io"]["mapping"]["inputs"]["input"]["normalize"] == {"mean": [0.0], "std": [16.0]}
    assert manifest["accuracy"]["outputs"]["logits"]["top1_agreement"] >= 0.98


def test_same_inputs_twice_compute_the_same_and_differ_only_in_a_few_header_words(rk3588_image, conversions):
    """The closed-source compiler writes heap/stack addresses into the file, so two builds are
    not byte-identical; this pins down how far apart they may be: same size, a handful of
    words before the weights, and bit-identical simulator outputs on every reference input."""
    import numpy as np

    from targets.rk3588 import compare_builds

    first = conversions("digits", "int8", out_name="a", target="rk3588")
    second = conversions("digits", "int8", out_name="b", target="rk3588")
    report = compare_builds((first / "model.rknn").read_bytes(), (second / "model.rknn").read_bytes())
    print("two builds of digits int8:", {key: value for key, value in report.items() if key != "runs"})
    for run in report.get("runs", []):
        print(f"  bytes {run['start']}-{run['end']}: {run['first']} vs {run['second']}")
    if not report["identical"]:
        assert report["same_size"] and report["differing_bytes"] <= report["size"] // 200
        assert report["last_offset"] < 4096  # the descriptor area, not the weights
    for name in ("expected.npz", "outputs.npz"):
        with np.load(first / "reference" / name) as a, np.load(second / "reference" / name) as b:
            assert all(np.array_equal(a[key], b[key]) for key in a.files)
    assert json.loads((first / "ops.json").read_text())["ops"] == json.loads((second / "ops.json").read_text())["ops"]


def test_wrong_channel_count_for_mean_is_one_clear_line(rk3588_image, example_dirs, tmp_path):
    model = example_dirs["mobilenetv2"] / "model.onnx"
    out = tmp_path / "artifacts"
    result = run_cli("convert", "--target", "rk3588", "--model", str(model), "--option", "mean=1,2", "--out", str(out), cwd=ROOT)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "option mean has 2 values but input 'input' has 3 channels" in errors[0], result.stderr
    assert not out.exists() or not any(out.iterdir())
