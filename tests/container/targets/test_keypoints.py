"""hand-landmark (MediaPipe's hand_landmark_lite, a TFLite source, task keypoints) -> rk3588 fp16 and int8
on rknn-toolkit2's x86 simulator: keypoint error and PCK against fp32 in the manifest, on the eval
samples where fp32 finds a hand. rk3588 is the one target that takes a TFLite source (the tflite
target converts from ONNX, SavedModel or Keras)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT

EVAL_SAMPLES, WITH_A_HAND = 14, 12  # the example's eval set: 12 crops fp32 takes for a hand, 2 without


@pytest.fixture(scope="module")
def hand_landmark() -> Path:
    from edgeship.examples import build_examples

    (folder,) = build_examples(ROOT / "examples", ["hand-landmark"])
    return folder


@pytest.fixture(scope="module")
def convert_hands(hand_landmark, docker_client):
    from edgeship.convert import convert
    from edgeship.examples import example_request
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    done: dict[tuple[str, str], Path] = {}

    def run(target: str, quant: str) -> Path:
        import targets

        if (target, quant) not in done:
            build(docker_client, load_spec(target))
            request = example_request(hand_landmark, target, quant, ROOT / "artifacts" / "tests", quant in targets.get(target).needs_calibration)
            assert request.model.name == "model.tflite"
            done[target, quant] = convert(request, client=docker_client)
        return done[target, quant]

    return run


def accuracy_of(artifact: Path) -> dict:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["format"] == "tflite" and manifest["task"]["name"] == "keypoints"
    assert manifest["task"]["presence"] == "Identity_1" and len(manifest["task"]["edges"]) == 21
    return manifest["accuracy"]


def figures(label: str, accuracy: dict) -> dict:
    metrics = accuracy["metrics"]
    print(f"hand-landmark {label}: PCK@0.05 {metrics['pck']:.4f}, mean keypoint error {metrics['mean_keypoint_error']:.5f} "
          f"(max {metrics['max_keypoint_error']:.4f}) of the hand's size over {metrics['samples_judged']} samples with a hand "
          f"({metrics['samples_without_object']} without, {metrics['objects_lost']} lost); passed {accuracy['passed']}")
    assert metrics["samples_judged"] + metrics["samples_without_object"] == EVAL_SAMPLES
    assert metrics["samples_judged"] == WITH_A_HAND  # fp32's presence decides, not the converted model's
    return metrics


def test_rk3588_fp16_keeps_the_landmarks_where_fp32_puts_them(convert_hands):
    accuracy = accuracy_of(convert_hands("rk3588", "fp16"))
    metrics = figures("rk3588 fp16", accuracy)
    assert accuracy["tolerances"]["min_pck"] == 0.98
    assert metrics["pck"] >= 0.98 and metrics["mean_keypoint_error"] < 0.01 and metrics["objects_lost"] == 0
    assert accuracy["passed"], accuracy.get("failed")


def test_rk3588_int8_is_reported_with_its_figures_and_a_verdict_that_follows_them(convert_hands):
    accuracy = accuracy_of(convert_hands("rk3588", "int8"))
    metrics = figures("rk3588 int8", accuracy)
    limit = accuracy["tolerances"]["min_pck"]
    assert limit == 0.90
    assert 0 <= metrics["pck"] <= 1 and metrics["mean_keypoint_error"] >= 0
    # the verdict is what PCK says against its gate, whichever way it goes
    assert accuracy["passed"] == (metrics["pck"] >= limit), (metrics, accuracy.get("failed"))
    if not accuracy["passed"]:
        assert any("PCK against fp32" in line for line in accuracy["failed"])
