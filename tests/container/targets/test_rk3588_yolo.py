"""YOLOv8n and YOLO11n (the examples, random weights) -> rk3588 fp16 and int8 on rknn-toolkit2's x86 simulator.
rknn-toolkit2 2.5.0 fails on their DFL head, so the target cuts it (targets/yolo_head.py, as rknn_model_zoo
exports these models): the artifact's outputs are per level DFL logits and class scores, its task the
yolov8_dfl decoder, judged by detection F1 against the cut fp32 graph at the examples' conf (0.01: at 0.25
random weights find no box). Each conversion takes 1-2 minutes on an idle machine (int8 more: its F1 misses
the gate, so the toolkit's per-layer analysis runs too): yolov8n fp16 and int8 run here (about 4 minutes),
yolo11n's two only with EDGESHIP_SLOW_TESTS=1 (the main job converts them too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.container.targets.test_rk3588_faces import SimulatorReplay

SLOW = pytest.mark.skipif(not os.environ.get("EDGESHIP_SLOW_TESTS"), reason="another 2-4 minutes of rk3588 conversion: EDGESHIP_SLOW_TESTS=1")
CASES = [("yolov8n", "fp16"), ("yolov8n", "int8"), pytest.param(("yolo11n", "fp16"), marks=SLOW), pytest.param(("yolo11n", "int8"), marks=SLOW)]
# F1 against fp32 at conf 0.01 as measured (issue 28), less a margin. Only yolov8n fp16 meets its gate (0.97). Random
# weights score most cells near the threshold with 80 classes nearly tied, so small changes flip boxes in and out
# and swap classes: int8 scores come in 1/510 steps (yolov8n: class-blind F1 0.85 where F1 is 0.64), and YOLO11n's
# attention block moves fp16 scores by up to 0.03. A trained model at conf 0.25 has neither problem to this degree.
FLOORS = {("yolov8n", "fp16"): 0.97, ("yolov8n", "int8"): 0.55, ("yolo11n", "fp16"): 0.8, ("yolo11n", "int8"): 0.3}
LEVELS = ["boxes_stride8", "scores_stride8", "boxes_stride16", "scores_stride16", "boxes_stride32", "scores_stride32"]


@pytest.fixture(scope="module")
def rk3588_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("rk3588"))


@pytest.fixture(scope="module", params=CASES, ids=lambda case: "-".join(case))
def artifact(request, rk3588_image, convert_example) -> Path:
    name, quant = request.param
    return convert_example(name, "rk3588", quant)


def test_the_cut_head_converts_and_keeps_detection_f1_over_boxes_that_exist(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy, task, cut = manifest["accuracy"], manifest["task"], manifest["rewrites"]["yolo_head"]
    metrics = accuracy["metrics"]
    print(f"{artifact.name}: F1 {metrics['f1']} over {metrics['reference_boxes']} fp32 boxes, {metrics['converted_boxes']} found; "
          f"{sum(manifest['ops'].values())} compiled layers")
    assert (artifact / "model.rknn").read_bytes()[:4] == b"RKNN"
    assert [spec["name"] for spec in manifest["outputs"]] == LEVELS
    assert task["decoder"] == "yolov8_dfl" and task["box_outputs"] == LEVELS[0::2] and task["score_outputs"] == LEVELS[1::2]
    assert task["conf"] == 0.01 and task["input_size"] == [640, 640]
    assert cut["rewrite"] == "yolo-head-cut" and cut["source_outputs"] == ["output0"] and [level["stride"] for level in cut["levels"]] == [8, 16, 32]
    assert metrics["reference_boxes"] >= 10  # a set of boxes that exist, not F1 over nothing
    assert metrics["f1"] >= FLOORS[manifest["model"], manifest["options"]["quant"]], metrics
    assert accuracy["passed"] == (metrics["f1"] >= accuracy["tolerances"]["min_f1"]), accuracy.get("failed")


def test_the_boards_check_and_the_camera_demo_read_the_cut_outputs(artifact):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.check import check
    from edgeship_runtime.demo.reading import Reader
    from edgeship_runtime.preprocess import Preprocess

    opened = Artifact.open(artifact)
    report = check(opened, SimulatorReplay)
    manifest_metrics = opened.manifest["accuracy"]["metrics"]
    assert report["metrics"]["f1"] == pytest.approx(manifest_metrics["f1"]) and report["metrics"]["reference_boxes"] >= 10
    assert report["metrics_vs_x86_converted"]["f1"] == 1.0 and report["passed"] == opened.manifest["accuracy"]["passed"]
    # the demo's reader on the simulator's outputs of the first reference photo, boxes mapped back to a 480x640 frame
    expected = opened.reference("expected", LEVELS)
    reader = Reader(opened, Preprocess.for_artifact(opened))
    result = reader.read(np.zeros((480, 640, 3), np.uint8), {name: expected[name][:1] for name in LEVELS})
    assert result["kind"] == "detect" and result["boxes"], result["label"]
    assert all(box["label"].startswith("class_") for box in result["boxes"])
