"""The stateful audio model (issue 27): Silero VAD from the pinned wheel, sr frozen to 16000, converted
for real for onnx, openvino, rk3588 and jetson; its eval is 3 sequences with the state carried
step to step, judged by frame decisions against fp32's, and `edgeship-runtime check` carries the
state the same way."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.support import ROOT
from tests.support.badinput import runtime_cli

MODES = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp16"), ("rk3588", "fp16"), ("rk3588", "int8"), ("jetson", "fp16")]


@pytest.fixture(scope="module")
def vad_example():
    from edgeship.examples import build_examples

    return build_examples(ROOT / "examples", names=("vad",))[0]


@pytest.fixture(scope="module")
def convert_vad(vad_example, docker_client):
    """(target, quant) -> the artifact folder, as the main job makes the request."""
    import targets
    from edgeship.convert import convert
    from edgeship.examples import example_request

    done: dict = {}

    def run(target: str, quant: str):
        if (target, quant) not in done:
            request = example_request(vad_example, target, quant, ROOT / "artifacts" / "tests", quant in targets.get(target).needs_calibration)
            done[target, quant] = convert(request, client=docker_client)
        return done[target, quant]

    return run


@pytest.mark.parametrize(("target", "quant"), MODES)
def test_vad_converts_with_its_state_carried_and_is_judged_by_frame_decisions(convert_vad, target, quant):
    manifest = json.loads((convert_vad(target, quant) / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    assert accuracy["passed"], accuracy["failed"]
    assert accuracy["task"] == "frame-decisions"
    metrics, gates = accuracy["metrics"], accuracy["tolerances"]
    assert metrics["frame_agreement"] >= gates["min_frame_agreement"] and metrics["active_f1"] >= gates["min_active_f1"]
    assert metrics["active"] > 50 and metrics["frames"] == 262  # fp32 hears speech in 2 of the 3 clips
    assert manifest["state"] == [{"output": "stateN", "input": "state"}]
    assert manifest["reference"]["sequences"] == [103, 122, 37] and manifest["reference"]["samples"] == 262
    assert manifest["input_values"]["sr"]["value"] == [16000]
    assert [spec["name"] for spec in manifest["inputs"]] == ["input", "state"]  # sr frozen: the board feeds none
    assert {spec["name"]: spec["batch_axis"] for spec in manifest["inputs"]} == {"input": 0, "state": None}
    assert any(step["step"] == "inline decided Ifs" for step in manifest["graph"]["steps"])
    assert accuracy["labelled"]["fp32"]["frame_agreement"] > 0.9  # fp32 against the known speech segments


@pytest.mark.parametrize(("target", "quant"), [("onnx", "fp32"), ("onnx", "int8")])  # the CPU backends this host has
def test_the_board_check_carries_the_state_and_fails_when_it_is_not_carried(convert_vad, target, quant, tmp_path):
    artifact = convert_vad(target, quant)
    result = runtime_cli("check", str(artifact))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["task"] == "frame-decisions" and report["samples"] == 262
    assert report["metrics"]["frame_agreement"] >= report["tolerances"]["min_frame_agreement"]
    # the same artifact with its manifest's state pairs dropped: each step is run on its own from the
    # state the eval set starts its sequence with (zeros), and no longer decides as fp32's carried run
    copy = tmp_path / "not-carried"
    shutil.copytree(artifact, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["state"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert not np.load(copy / "reference" / "inputs.npz")["state"].any()  # the initial states, as the eval set gives them
    broken = json.loads(runtime_cli("check", str(copy)).stdout)
    assert not broken["passed"] and broken["samples"] == 262
    assert broken["metrics"]["frame_agreement"] < report["metrics"]["frame_agreement"]
