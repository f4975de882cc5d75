"""The demo's parts on their own: bounded queues, the preprocess record, classification and
the overlay (the whole pipeline runs on converted artifacts in tests/container/test_demo.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgeship_runtime.demo import BANNER_PX, StageQueue, annotate, draw_boxes, open_source
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.preprocess import Preprocess, validate

IMAGE_NCHW3 = {"name": "input", "shape": [1, 3, 224, 224]}
IMAGE_NCHW1 = {"name": "input", "shape": [1, 1, 8, 8]}


def test_a_live_queue_drops_its_oldest_frames_and_never_the_end_marker():
    queue = StageQueue("a->b", maxsize=2, drop_oldest=True)
    for frame in range(5):
        queue.put(frame)
    queue.put(StageQueue.END)
    queue.put(StageQueue.END)
    assert queue.dropped == 5  # 3 frames to make room for frames, 2 to make room for the end markers
    assert [queue.get(), queue.get()] == [StageQueue.END, StageQueue.END]


def test_a_file_queue_waits_instead_of_dropping():
    queue = StageQueue("a->b", maxsize=1, drop_oldest=False)
    queue.put(1)
    done = threading.Event()
    threading.Thread(target=lambda: (queue.put(2), done.set()), daemon=True).start()
    assert not done.wait(0.2)  # blocked while full
    assert queue.get() == 1 and done.wait(5) and queue.get() == 2 and queue.dropped == 0


def test_preprocess_defaults_follow_the_input_shape():
    assert validate(None, IMAGE_NCHW3, "m")["color"] == "rgb"
    gray = validate({}, IMAGE_NCHW1, "m")
    assert gray["color"] == "gray" and gray["layout"] == "NCHW" and gray["mean"] == [0.0] and gray["std"] == [1.0]
    assert validate({}, {"name": "x", "shape": [1, 96, 96, 3]}, "m")["layout"] == "NHWC"


@pytest.mark.parametrize("spec,shape,message", [
    ({"colour": "rgb"}, [1, 3, 4, 4], r"unknown preprocess key\(s\) \['colour'\]"),
    ({"color": "rgb"}, [1, 1, 8, 8], r"color 'rgb' does not fit input 'input' with 1 channel"),
    ({"mean": [0.5, 0.5]}, [1, 3, 4, 4], r"mean has 2 values; input 'input' has 3 channel"),
    ({"std": 0}, [1, 3, 4, 4], r"scale and std must not be 0"),
    ({}, [1, 64], r"not an image with 1 or 3 channels; set \"layout\""),
    ({"resize": "fill"}, [1, 3, 4, 4], r"resize 'fill' is not one of center_crop, stretch, letterbox, pad"),
])
def test_a_bad_preprocess_record_is_one_clear_error(spec, shape, message):
    with pytest.raises(ArtifactError, match=message):
        validate(spec, {"name": "input", "shape": shape}, "preprocess.json")


def test_preprocess_crops_the_centre_inverts_and_scales():
    pytest.importorskip("cv2")
    frame = np.full((60, 100, 3), 255, np.uint8)  # white paper, a black square in the middle
    frame[20:40, 40:60] = 0
    preprocess = Preprocess("input", [1, 1, 6, 6], validate({"invert": True, "scale": 1 / 255}, IMAGE_NCHW1 | {"shape": [1, 1, 6, 6]}, "m"))
    value = preprocess(frame)["input"]
    assert value.shape == (1, 1, 6, 6) and value.dtype == np.float32
    # the 60x60 centre crop, shrunk by 10: ink (1.0) in the middle 2x2, paper (0.0) around it
    expected = np.zeros((6, 6), np.float32)
    expected[2:4, 2:4] = 1.0
    np.testing.assert_allclose(value[0, 0], expected, atol=1e-6)


def test_preprocess_rgb_mean_std_in_nhwc():
    pytest.importorskip("cv2")
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[..., 0], frame[..., 2] = 255, 0  # pure blue in BGR
    spec = validate({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, {"name": "x", "shape": [1, 4, 4, 3]}, "m")
    value = Preprocess("x", [1, 4, 4, 3], spec)(frame)["x"]
    np.testing.assert_allclose(value[0, 0, 0], [-1.0, -1.0, 1.0], atol=1e-6)  # RGB order: blue last


def test_a_detectors_boxes_are_drawn_where_the_frame_has_them():
    pytest.importorskip("cv2")
    frame = np.zeros((240, 320, 3), np.uint8)
    boxes = [{"box": [40, 60, 120, 100], "quad": None, "score": 0.9, "label": "text", "text": "EXIT 12"},
             {"box": [200, 150, 260, 200], "quad": [[200, 150], [260, 150], [260, 200], [200, 200]], "score": 0.8, "label": "text"}]
    drawn = draw_boxes(frame, boxes)
    amber = (drawn[..., 2] > 200) & (drawn[..., 1] > 150) & (drawn[..., 0] < 60)
    assert amber[60, 40:121].all() and amber[60:101, 120].all()  # the first box's top and right edges
    assert amber[150, 200:261].all()  # the quad's top edge
    assert not amber[170:190, 210:250].any()  # nothing drawn inside a box
    canvas = annotate(frame, {"label": "EXIT 12", "confidence": 0.9, "boxes": boxes}, 10.0, 5.0)
    np.testing.assert_array_equal(canvas[BANNER_PX:], drawn)


def test_the_overlay_sits_above_the_untouched_frame():
    pytest.importorskip("cv2")
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    canvas = annotate(frame, {"label": "cat", "confidence": 0.5}, 29.5, 4.2, "onnxruntime")
    assert canvas.shape == (240 + BANNER_PX, 320, 3)
    np.testing.assert_array_equal(canvas[BANNER_PX:], frame)
    banner = canvas[:BANNER_PX]
    assert (banner == (24, 24, 24)).all(axis=-1).mean() > 0.6  # mostly the dark banner...
    green_text = (banner[..., 1] > 200) & (banner[..., 0] < 150)
    assert green_text.sum() > 50  # ...with the class in green


def test_small_frames_are_enlarged_for_the_viewer():
    pytest.importorskip("cv2")
    canvas = annotate(np.zeros((8, 8, 3), np.uint8), {"label": "3", "confidence": 1.0}, 1.0, 1.0)
    assert canvas.shape[1] >= 320


@pytest.mark.parametrize("spec,message", [
    ("/dev/video97", r"camera /dev/video97 does not exist on this board"),
    ("nowhere/clip.avi", r"--source nowhere/clip.avi is neither `pattern`, a camera"),
])
def test_a_missing_source_is_one_clear_error(spec, message):
    with pytest.raises(ArtifactError, match=message):
        open_source(spec)


def test_the_test_pattern_paces_itself_like_a_camera():
    pytest.importorskip("cv2")
    source = open_source("pattern", 64, 48, fps=50)
    began = time.monotonic()
    frames = [source.read() for _ in range(6)]
    assert source.live and frames[0][0].shape == (48, 64, 3) and frames[5][1] == "pattern:5"
    assert time.monotonic() - began >= 5 / 50 * 0.9


def test_pad_keeps_the_aspect_ratio_and_pads_zeros_after_normalization():
    pytest.importorskip("cv2")
    preprocess = Preprocess("x", [1, 3, 48, 320], validate({"color": "bgr", "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "pad"},
                                                           {"name": "x", "shape": [1, 3, 48, 320]}, "m"))
    crop = np.full((24, 80, 3), 255, np.uint8)  # at height 48 (twice as high), 160 px wide
    value = preprocess(crop)["x"]
    assert value.shape == (1, 3, 48, 320)
    np.testing.assert_allclose(value[0, :, :, :160], 1.0, atol=1e-6)  # white, normalized
    assert not value[0, :, :, 160:].any()  # the padding


def test_letterbox_maps_boxes_back_to_the_frame():
    pytest.importorskip("cv2")
    from edgeship_runtime.tasks.geometry import boxes_to_frame

    preprocess = Preprocess("images", [1, 3, 640, 640], validate({"resize": "letterbox"}, {"name": "images", "shape": [1, 3, 640, 640]}, "m"))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:200, 300:400] = 255
    image = preprocess.fit(frame)
    assert image.shape == (640, 640, 3) and (image[:80] == 114).all() and (image[-80:] == 114).all()
    transform = preprocess.transform(frame.shape[:2])
    np.testing.assert_allclose(boxes_to_frame(np.array([[300, 180, 400, 280]]), transform), [[300, 100, 400, 200]], atol=1e-6)


def test_the_task_record_can_be_overridden_and_is_checked_again(tmp_path):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.demo.reading import Reader

    manifest = {"task": {"name": "detect", "output": "output0", "decoder": "yolov8", "conf": 0.25},
                "inputs": [{"name": "images", "shape": [1, 3, 640, 640]}], "outputs": [{"name": "output0", "shape": [1, 84, 8400]}],
                "artifact": {"file": "model.onnx"}}
    artifact = Artifact(tmp_path, manifest)
    preprocess = Preprocess("images", [1, 3, 640, 640], validate({"resize": "letterbox"}, manifest["inputs"][0], "m"))
    assert Reader(artifact, preprocess).task["conf"] == 0.25
    task = Reader(artifact, preprocess, {"conf": 0.5, "iou": 0.3}).task
    assert (task["decoder"], task["conf"], task["iou"], task["max_det"]) == ("yolov8", 0.5, 0.3, 300)
    with pytest.raises(ArtifactError, match=r"^--task: task parameter conf=2 must be between 0 and 1$"):
        Reader(artifact, preprocess, {"conf": 2})
