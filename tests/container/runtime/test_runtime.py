"""The board runtime on x86: detect, check and bench for real on converted artifacts,
through its command line, and the clear errors of the backends whose hardware is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgeship_runtime.artifact import Artifact, sha256_file
from edgeship_runtime.backends import open_backend
from edgeship_runtime.errors import RuntimeUnavailable

ARTIFACTS = [("digits", "fp32", "tflite"), ("digits", "int8", "tflite"), ("mobilenetv2", "int8", "tflite"),
             ("digits", "fp32", "onnx"), ("digits", "int8", "onnx")]


def runtime(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", *map(str, args)], capture_output=True, text=True, timeout=900)


def test_detect_describes_this_machine():
    result = runtime("detect")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    import platform

    assert found["arch"] == platform.machine() and found["kernel"] == platform.release()
    assert found["available"][0] == "cpu" and found["cpu"]["cores"] >= 1
    assert set(found["accelerators"]) == {"edgetpu", "rknpu", "nvidia_gpu"}
    assert "ai-edge-litert" in found["runtimes"] and "onnxruntime" in found["runtimes"]


@pytest.mark.parametrize("example,quant,target", ARTIFACTS)
def test_check_passes_on_the_reference_data(conversions, example, quant, target):
    artifact = conversions(example, quant, target=target)
    result = runtime("check", artifact)
    report = json.loads(result.stdout)
    figures = report["outputs"]["logits"]
    if example == "digits" or quant == "fp32":
        assert result.returncode == 0 and report["passed"], figures
    assert report["integrity"] == {"passed": True, "mismatched_files": []}
    assert report["samples"] == Artifact.open(artifact).manifest["reference"]["samples"]
    # the board runtime reproduces the x86 conversion's own outputs
    assert figures["vs_x86_converted"]["max_abs_error"] <= 1e-3 * max(1.0, figures["max_abs_error"])
    assert report["artifact"]["artifact_sha256"] == sha256_file(artifact / Artifact.open(artifact).manifest["artifact"]["file"])


def test_a_bounded_check_judges_the_first_samples_and_says_how_many_of_how_many(conversions, tmp_path):
    """What an emulated board runs (edgeship_check_max_samples): N samples, the report says N of M,
    and only those N are judged."""
    artifact = conversions("digits", "fp32")
    total = Artifact.open(artifact).manifest["reference"]["samples"]
    report = json.loads(runtime("check", artifact, "--max-samples", 5).stdout)
    assert report["passed"] and (report["samples"], report["samples_available"]) == (5, total) and total > 5
    copy = _copy(artifact, tmp_path)
    with np.load(copy / "reference" / "outputs.npz") as stored:
        outputs = {name: stored[name].copy() for name in stored.files}
    outputs["logits"][10] = -outputs["logits"][10]  # the 11th sample's reference: outside the bounded set
    np.savez(copy / "reference" / "outputs.npz", **outputs)
    # listed with its new sha256, as a conversion would: an unlisted change is refused before any sample
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["reference/outputs.npz"] = sha256_file(copy / "reference" / "outputs.npz")
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    assert json.loads(runtime("check", copy, "--max-samples", 5).stdout)["failed"] == []
    assert json.loads(runtime("check", copy).stdout)["failed"]  # judged on every sample, the tampered one counts


def test_a_recorded_check_is_reused_for_the_same_files_board_and_arguments_and_run_again_otherwise(conversions, tmp_path):
    """`check --record FILE` (deploy and bench on the boards): the report kept for the very same
    fingerprint comes back without running the samples; other arguments, a changed reference
    file or a record cut short run the check again."""
    copy = _copy(conversions("digits", "int8"), tmp_path)
    record = tmp_path / "checks" / "digits.json"
    first = runtime("check", copy, "--record", record)
    assert first.returncode == 0 and record.is_file(), first.stderr[-2000:]
    assert "recorded" not in json.loads(first.stdout)
    again = json.loads(runtime("check", copy, "--record", record).stdout)
    assert again["recorded"]["file"] == str(record) and again["passed"]
    assert {key: value for key, value in again.items() if key != "recorded"} == json.loads(first.stdout)
    bounded = json.loads(runtime("check", copy, "--record", record, "--max-samples", 5).stdout)  # another argument
    assert "recorded" not in bounded and bounded["samples"] == 5
    with np.load(copy / "reference" / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    np.savez(copy / "reference" / "outputs.npz", **{name: value[:, ::-1].copy() for name, value in outputs.items()})
    tampered = runtime("check", copy, "--record", record, "--max-samples", 5)  # files changed since the record
    assert tampered.returncode == 1 and "recorded" not in json.loads(tampered.stdout)
    record.write_text('{"fingerprint": ')  # cut short: checked again, not an error
    assert runtime("check", copy, "--record", record, "--max-samples", 5).returncode == 1


def test_a_time_boxed_bench_stops_after_max_s_and_says_so(conversions):
    artifact = conversions("mobilenetv2", "int8")
    result = runtime("bench", artifact, "--threads", 1, "--warmup-runs", 0, "--warmup-s", 0, "--min-runs", 100000, "--min-s", 0,
                     "--max-s", 0.5)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(result.stdout)
    assert bench["options"]["max_s"] == 0.5 and bench["steady"]["time_boxed"]
    assert 1 <= bench["steady"]["runs"] < 100000
    assert bench["steady"]["runs"] * bench["steady"]["min_ms"] / 1000 < 0.5 + bench["steady"]["max_ms"] / 1000
    refused = runtime("bench", artifact, "--max-s", 0)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "edgeship-runtime: error: --max-s 0.0 must be greater than 0 (seconds after which no new run starts)")

def _copy(artifact, tmp_path):
    copy = tmp_path / artifact.name
    shutil.copytree(artifact, copy)
    return copy


def test_check_fails_on_a_tampered_reference_output(conversions, tmp_path):
    copy = _copy(conversions("digits", "int8"), tmp_path)
    with np.load(copy / "reference" / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    outputs["logits"] = outputs["logits"][:, ::-1].copy()  # scores of class k moved to class 9-k
    np.savez(copy / "reference" / "outputs.npz", **outputs)
    result = runtime("check", copy)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["passed"]
    assert report["integrity"]["mismatched_files"] == ["reference/outputs.npz"]
    # with the manifest re-signed, the comparison itself still catches it
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["reference/outputs.npz"] = sha256_file(copy / "reference" / "outputs.npz")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = runtime("check", copy)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["integrity"]["passed"] and not report["outputs"]["logits"]["passed"]
    assert report["outputs"]["logits"]["top1_agreement"] < 0.5


@pytest.mark.parametrize("example,quant,target", [("digits", "fp32", "tflite"), ("digits", "int8", "tflite"), ("digits", "int8", "onnx"),
                                                  ("mobilenetv2", "fp32", "tflite")])
def test_bench_reports_the_methodology_figures(conversions, tmp_path, example, quant, target):
    artifact = conversions(example, quant, target=target)
    output = tmp_path / "bench.json"
    result = runtime("bench", artifact, "--threads", 1, "--min-runs", 30, "--min-s", 0.5, "--warmup-runs", 3, "--warmup-s", 0.2,
                     "--batches", "1,2", "--instances", "2", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(output.read_text())
    assert bench == json.loads(result.stdout)
    manifest = Artifact.open(artifact).manifest
    assert bench["schema_version"] == 1 and bench["backend"] == manifest["runtime_backend"] and bench["accelerator"] == "cpu"
    assert bench["artifact"]["artifact_sha256"] == manifest["artifact"]["sha256"] and bench["artifact"]["cache_key"] == manifest["cache_key"]
    assert bench["options"]["threads"] == 1 and bench["options"]["min_runs"] == 30
    steady = bench["steady"]
    assert steady["runs"] >= 30
    assert steady["min_ms"] <= steady["p50_ms"] <= steady["p90_ms"] <= steady["p99_ms"] <= steady["max_ms"]
    assert steady["fps"] == pytest.approx(1000 / steady["mean_ms"])
    assert bench["load_s"] > 0 and bench["first_inference_s"] > 0
    assert bench["memory"]["peak_kb"] >= bench["memory"]["after_load"]["rss_kb"] > bench["memory"]["before_load"]["rss_kb"] > 0
    assert "growth_kb" in bench["memory"]
    second = bench["batch_sweep"][1]
    assert second["batch"] == 2 and ("skipped" in second or second["runs"] >= 30)
    scaling = bench["multi_instance"]
    assert [row["instances"] for row in scaling] == [1, 2]
    assert scaling[0]["scaling_efficiency"] == 1.0 and 0 < scaling[1]["scaling_efficiency"] <= 1.5
    assert bench["power"]["available"] is False and "no power sensor" in bench["power"]["reason"]
    assert bench["board"]["arch"] and bench["fallback"] is None


def _retargeted(artifact, tmp_path, backend: str):
    """A copy of a CPU artifact whose manifest names an accelerator backend, as an rk3588,
    jetson or coral artifact of the same source model would."""
    copy = _copy(artifact, tmp_path / backend)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["runtime_backend"] = backend
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("backend,message", [
    ("rknnlite", r"no Rockchip NPU on this board .*--allow-cpu-fallback"),
    ("tensorrt", r"needs TensorRT's Python bindings \(JetPack on a Jetson"),
    ("edgetpu", r"cannot load libedgetpu.so.1 .*Coral's apt repository"),
])
def test_missing_accelerator_sdk_is_one_clear_error(conversions, tmp_path, backend, message):
    copy = _retargeted(conversions("digits", "fp32"), tmp_path, backend)
    with pytest.raises(RuntimeUnavailable, match=message):
        open_backend(Artifact.open(copy)).load()
    result = runtime("check", copy)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len([line for line in lines if line.startswith("edgeship-runtime: error:")]) == 1
    assert "which this board lacks" in lines[-1] and "--allow-cpu-fallback" in lines[-1]


def test_cpu_fallback_is_labelled_everywhere(conversions, tmp_path):
    cpu = conversions("digits", "fp32")
    npu = _retargeted(cpu, tmp_path, "rknnlite")
    result = runtime("check", npu, "--allow-cpu-fallback")
    assert result.returncode == 2 and "needs --cpu-artifact" in result.stderr
    result = runtime("check", npu, "--allow-cpu-fallback", "--cpu-artifact", cpu)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["fallback"]["cpu_fallback"] is True
    assert report["fallback"]["requested"]["backend"] == "rknnlite" and report["fallback"]["used"]["backend"] == "litert"
    result = runtime("bench", npu, "--allow-cpu-fallback", "--cpu-artifact", cpu, "--min-runs", 5, "--min-s", 0.1)
    bench = json.loads(result.stdout)
    assert bench["fallback"]["cpu_fallback"] is True and bench["accelerator"] == "cpu" and bench["backend"] == "litert"
    other = conversions("mobilenetv2", "fp32")
    result = runtime("check", npu, "--allow-cpu-fallback", "--cpu-artifact", other)
    assert result.returncode == 2 and "converted from another model" in result.stderr


def test_a_cpu_artifact_sent_in_place_of_the_boards_own_is_labelled_a_fallback(conversions, tmp_path):
    """The deploy plan sends only the CPU artifact where the board's target has none; the
    playbooks pass the plan's note as --fallback-for, so results still say CPU fallback."""
    cpu = conversions("digits", "fp32")
    note = "no coral int8 artifact of digits; its CPU artifact runs, labelled as a fallback"
    report = json.loads(runtime("check", cpu, "--fallback-for", note).stdout)
    assert report["fallback"] == {"cpu_fallback": True, "reason": note, "requested": None, "used": report["fallback"]["used"]}
    assert report["fallback"]["used"]["backend"] == "litert"
    bench = json.loads(runtime("bench", cpu, "--fallback-for", note, "--min-runs", 5, "--min-s", 0.1).stdout)
    assert bench["fallback"]["reason"] == note
    assert json.loads(runtime("check", cpu).stdout)["fallback"] is None
    result = runtime("check", _retargeted(cpu, tmp_path, "rknnlite"), "--allow-cpu-fallback", "--cpu-artifact", cpu, "--fallback-for", note)
    assert result.returncode == 0 and json.loads(result.stdout)["fallback"]["requested"]["backend"] == "rknnlite"  # choose's record wins


def _device_artifact(variable: str):
    import os

    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"set {variable} to an artifact directory converted for this board's accelerator")
    return Artifact.open(path)


@pytest.mark.npu
@pytest.mark.parametrize("core", ["single", "auto", "all"])
def test_rknnlite_check_on_a_real_npu(core):
    """On an RK3588 board: EDGESHIP_RKNN_ARTIFACT=<rk3588 artifact dir> pytest -m npu"""
    from edgeship_runtime.backends.rknnlite import RKNNLiteBackend
    from edgeship_runtime.check import check

    report = check(_device_artifact("EDGESHIP_RKNN_ARTIFACT"), RKNNLiteBackend, core=core)
    assert report["passed"], report["outputs"]


@pytest.mark.gpu
def test_tensorrt_check_on_a_real_gpu():
    """On a GPU machine or Jetson: EDGESHIP_TENSORRT_ARTIFACT=<artifact with an engine built there> pytest -m gpu"""
    from edgeship_runtime.backends.tensorrt import TensorRTBackend
    from edgeship_runtime.check import check

    report = check(_device_artifact("EDGESHIP_TENSORRT_ARTIFACT"), TensorRTBackend)
    assert report["passed"], report["outputs"]
