"""face-detection (MediaPipe's BlazeFace short range, a TFLite source) -> rk3588 fp16 on rknn-toolkit2's
x86 simulator, judged by detection F1 against fp32 with anchors generated from the task file's
MediaPipe options (no anchors file in the artifact), in the manifest and by the board's check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def rk3588_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("rk3588"))


@pytest.fixture(scope="module")
def artifact(rk3588_image, docker_client) -> Path:
    from edgeship.convert import Request, convert
    from edgeship.examples import build_examples

    (folder,) = build_examples(ROOT / "examples", ["face-detection"])
    # the TFLite source is the example's model.tflite (its request is built here, not by example_request)
    request = Request(target="rk3588", model=folder / "model.tflite", quant="fp16", calib=None, eval=folder / "eval.npz",
                      labels=folder / "labels.txt", out=ROOT / "artifacts" / "tests", preprocess=folder / "preprocess.json",
                      task=str(folder / "task.json"), name=folder.name)
    return convert(request, client=docker_client)


class SimulatorReplay:
    """The board's backend on x86, where there is no NPU: each reference input's outputs are the ones
    the toolkit's x86 simulator computed for this artifact at conversion (reference/expected.npz), or
    those with `change` applied, so `check` judges them exactly as it judges a board's."""

    name = "rknn-simulator-replay"

    def __init__(self, artifact, threads=None, **options):
        names = [spec["name"] for spec in artifact.outputs]
        self.inputs = artifact.reference("inputs", [spec["name"] for spec in artifact.inputs])
        self.expected = artifact.reference("expected", names)
        self.names, self.index = names, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def infer(self, sample: dict) -> dict:
        (name, value), = sample.items()
        assert np.array_equal(value[0], self.inputs[name][self.index])  # check feeds the reference inputs in order
        outputs = {output: self.expected[output][self.index:self.index + 1].copy() for output in self.names}
        self.index += 1
        return self.change(outputs)

    def change(self, outputs: dict) -> dict:
        return outputs


def test_fp16_keeps_detection_f1_with_generated_anchors_in_the_manifest(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy, task = manifest["accuracy"], manifest["task"]
    metrics = accuracy["metrics"]
    print(f"face-detection rk3588 fp16 (simulator): F1 {metrics['f1']:.4f} (precision {metrics['precision']:.4f}, recall "
          f"{metrics['recall']:.4f}) over {metrics['reference_boxes']} fp32 faces, {metrics['converted_boxes']} found")
    assert manifest["source"]["format"] == "tflite" and (artifact / "model.rknn").read_bytes()[:4] == b"RKNN"
    assert task["decoder"] == "ssd" and task["anchors"] is None and task["strides"] == [8, 16, 16, 16] and task["nms"] == "weighted"
    assert not any(name.endswith(".npy") for name in manifest["files"])  # the anchors are generated, not shipped
    assert metrics["reference_boxes"] == 11  # 9 photos with a face, the pair with two; none on the 3 without
    assert metrics["f1"] >= 0.97 and accuracy["tolerances"]["min_f1"] == 0.97
    assert accuracy["passed"], accuracy.get("failed")


def test_the_boards_check_judges_the_artifact_by_detection_f1(artifact):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.check import check

    report = check(Artifact.open(artifact), SimulatorReplay)
    print("board check (simulator outputs):", {key: report["metrics"][key] for key in ("f1", "reference_boxes", "converted_boxes")})
    assert report["passed"] and report["task"] == "detect" and report["samples"] == 13
    assert report["metrics"]["f1"] >= 0.97 and report["metrics"]["reference_boxes"] == 11
    assert report["metrics_vs_x86_converted"]["f1"] == 1.0

    class Shifted(SimulatorReplay):
        # every box regressor moved by a third of the input (x offsets are pixels at x_scale 128): the raw tensors
        # stay close (cosine ~0.99) but no face is where fp32 found it, and F1 says so
        def change(self, outputs: dict) -> dict:
            outputs["regressors"][..., 0] += 40.0
            return outputs

    failed = check(Artifact.open(artifact), Shifted)
    assert not failed["passed"] and failed["metrics"]["f1"] < 0.5
    assert any("detection F1" in reason for reason in failed["failed"]), failed["failed"]
