"""The selfie-segmentation example (edgeship.examples.selfie): MediaPipe's selfie_segmentation.tflite from
the pinned mediapipe wheel, its segment task record, preprocess file and data. fp32's masks themselves
need the kernel rewrite, which runs in the toolchain images: tests/container/targets/test_mediapipe_kernels.py
checks them.

The model comes from the pinned wheel, fetched once per machine; the tests are skipped only when pip
cannot download it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeship.examples import selfie
from edgeship.examples.pinned import MEDIAPIPE
from edgeship_runtime.preprocess import Preprocess
from edgeship_runtime.preprocess import validate as validate_preprocess
from edgeship_runtime.tasks.record import validate
from edgeship_runtime.tasks.segment import masks
from tests.support.models import mediapipe_wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    mediapipe_wheel()  # skips only when pip cannot download it
    return selfie.build_selfie_segmentation(tmp_path_factory.mktemp("selfie") / "selfie-segmentation")


def test_the_example_holds_the_pinned_model_and_twelve_samples_in_zero_to_one(built):
    metadata = json.loads((built / "metadata.json").read_text())
    assert metadata["source"]["wheel_sha256"] == MEDIAPIPE.sha256 and metadata["source"]["member"] == selfie.MEMBER
    assert (built / "model.tflite").read_bytes()[4:8] == b"TFL3"
    with np.load(built / "eval.npz") as data:
        assert data.files == ["input_1"]
        assert data["input_1"].shape == (12, 256, 256, 3) and data["input_1"].dtype == np.float32
        assert data["input_1"].min() >= 0.0 and data["input_1"].max() <= 1.0
    assert metadata["eval"]["names"] == list(selfie.eval_images())
    calibration = sorted((built / "calib").glob("*.npy"))
    assert len(calibration) == 8 and np.load(calibration[0]).shape == (1, 256, 256, 3)
    assert (built / "labels.txt").read_text().split() == ["background", "person"]
    assert metadata["generator"] == selfie.GENERATOR


def test_the_task_reads_the_sigmoid_mask_channel_last_at_one_half(built):
    record = validate(json.loads((built / "task.json").read_text()), [{"name": "activation_10", "shape": [1, 256, 256, 1]}],
                      ["background", "person"], "task.json", [{"name": "input_1", "shape": [1, 256, 256, 3]}])
    assert record["name"] == "segment" and record["layout"] == "NHWC" and record["threshold"] == 0.5
    probabilities = np.zeros((1, 256, 256, 1), np.float32)
    probabilities[0, :100, :, 0] = 0.9  # a person in the top rows
    probabilities[0, 100:101, :, 0] = 0.5  # exactly at the threshold: not a person
    mask = masks(record, probabilities)
    assert mask.shape == (1, 256, 256) and mask[0, :100].all() and not mask[0, 100:].any()


def test_the_preprocess_file_is_mediapipes_zero_to_one_rgb_stretched():
    spec = validate_preprocess(selfie.PREPROCESS, {"name": "input_1", "shape": [1, 256, 256, 3]}, "preprocess.json")
    rgb = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    fed = Preprocess("input_1", [1, 256, 256, 3], spec)(rgb[..., ::-1].copy())["input_1"][0]  # the demo feeds BGR frames
    np.testing.assert_allclose(fed, selfie.model_input(rgb), atol=1e-6)
    wide = np.random.default_rng(1).integers(0, 256, (120, 300, 3), dtype=np.uint8)  # stretched, not cropped or padded
    assert Preprocess("input_1", [1, 256, 256, 3], spec)(wide[..., ::-1].copy())["input_1"].shape == (1, 256, 256, 3)
