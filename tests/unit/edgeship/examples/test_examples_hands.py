"""The hand-landmark example (edgeship.examples.hands): MediaPipe's hand_landmark_lite from the pinned
mediapipe wheel, its task file read by the keypoints task, and an eval set where fp32 finds a hand on
the crops the example says it does (and on no other sample).

The model comes from the pinned wheel, fetched once per machine; the tests are skipped only when pip
cannot download it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeship.examples import example_request, hands
from edgeship_runtime.preprocess import validate as validate_preprocess
from edgeship_runtime.tasks import compare, default_tolerances
from edgeship_runtime.tasks.keypoints import found, points
from edgeship_runtime.tasks.record import validate
from tests.support.models import mediapipe_wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    mediapipe_wheel()  # skips only when pip cannot download it
    return hands.build_hand_landmark(tmp_path_factory.mktemp("hands") / "hand-landmark")


@pytest.fixture(scope="module")
def fp32(built) -> tuple[dict, list[dict]]:
    """The example's task record (validated against the model's outputs) and fp32's outputs per eval sample."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(built / "model.tflite"))
    interpreter.allocate_tensors()
    (given,) = interpreter.get_input_details()
    details = interpreter.get_output_details()
    outputs = [{"name": d["name"], "shape": d["shape"].tolist()} for d in details]
    assert outputs == [{"name": "Identity", "shape": [1, 63]}, {"name": "Identity_1", "shape": [1, 1]},
                       {"name": "Identity_2", "shape": [1, 1]}, {"name": "Identity_3", "shape": [1, 63]}]
    record = validate(json.loads((built / "task.json").read_text()), outputs, None, "task.json",
                      [{"name": given["name"], "shape": given["shape"].tolist()}])
    samples = []
    with np.load(built / "eval.npz") as data:
        for sample in data["input_1"]:
            interpreter.set_tensor(given["index"], sample[None])
            interpreter.invoke()
            samples.append({d["name"]: interpreter.get_tensor(d["index"]).copy() for d in details})
    return record, samples


def test_the_task_file_reads_the_model_as_21_hand_landmarks_with_mediapipes_skeleton(fp32):
    record, _ = fp32
    assert record["num_keypoints"] == 21 and record["dims"] == 3 and record["input_size"] == [224, 224]
    assert record["presence"] == "Identity_1" and record["edges"] == hands.HAND_CONNECTIONS
    # HAND_CONNECTIONS: 21 edges joining all 21 points (the palm's ring closes one loop)
    joined = {0}
    for _ in range(21):
        joined |= {j for i, j in record["edges"] if i in joined} | {i for i, j in record["edges"] if j in joined}
    assert len(record["edges"]) == 21 and joined == set(range(21))


def test_fp32_finds_a_hand_on_the_crops_the_example_lists_and_on_no_other_sample(built, fp32):
    record, samples = fp32
    scores = [float(sample["Identity_1"].ravel()[0]) for sample in samples]
    assert all(0 <= score <= 1 for score in scores)  # already a sigmoid's output: no presence_logit
    expected = [*hands.EVAL_CROPS.values(), *hands.NO_HAND.values()]
    assert scores == pytest.approx(expected, abs=2e-3)
    present = [bool(found(record, sample)[0]) for sample in samples]
    assert present == [True] * len(hands.EVAL_CROPS) + [False] * len(hands.NO_HAND)
    metadata = json.loads((built / "metadata.json").read_text())
    assert metadata["eval"]["fp32_finds_a_hand"] == 12 and metadata["eval"]["samples"] == 14
    assert "NO HAND PHOTOS" in metadata["eval"]["from"]


def test_fp32_puts_the_landmarks_inside_the_input(fp32):
    record, samples = fp32
    for sample in samples[:len(hands.EVAL_CROPS)]:
        xy = points(record, sample["Identity"])[0]
        assert xy.min() > -20 and xy.max() < 244  # input pixels, not 0..1


def test_fp32_against_itself_passes_and_the_no_hand_samples_are_left_out(fp32):
    record, samples = fp32
    report = compare(record, samples, samples, default_tolerances("keypoints", "fp32"))
    assert report["passed"] and report["metrics"]["pck"] == 1.0
    assert report["metrics"]["samples_judged"] == 12 and report["metrics"]["samples_without_object"] == 2


def test_the_preprocess_file_and_the_request_take_the_tflite_model(built):
    spec = validate_preprocess(json.loads((built / "preprocess.json").read_text()), {"name": "input_1", "shape": [1, 224, 224, 3]},
                               "preprocess.json")
    assert spec["layout"] == "NHWC" and spec["color"] == "rgb"
    request = example_request(built, "rk3588", "int8", built.parent / "out", True)
    assert request.model == built / "model.tflite" and request.calib == built / "calib" and request.task == str(built / "task.json")
    assert len(list((built / "calib").iterdir())) == 10
