"""A face detector with generated anchors, on photos with faces that ship in scikit-image.

- face-detection: MediaPipe's BlazeFace short range (face_detection_short_range.tflite, Apache-2.0)
  from the mediapipe 0.10.14 wheel (pinned in edgeship.examples.pinned; read out, never imported).
  Input RGB NHWC 128x128 in [-1, 1]; outputs `regressors` [1, 896, 16] (a box and six keypoints per
  anchor) and `classificators` [1, 896, 1] (face logits). Its task file is the detect task's ssd
  decoder with the options of MediaPipe's face_detection_short_range graph: anchors generated as
  its SsdAnchorsCalculator does (no anchors file), boxes decoded as its TensorsToDetectionsCalculator
  does, weighted NMS at IoU 0.3.

Eval and calibration images are square crops, flips and scales of skimage.data.astronaut() (Eileen
Collins) and camera() (the cameraman), a pair of both side by side (two faces), and crops without
a face (coffee, rocket, the astronaut's lower half), so both kinds of error show. Square, so the
128x128 resize is the letterbox MediaPipe's graph makes, without padding.

It lands in examples/face-detection/: model.tflite, calib/NNN.npy, eval.npz (`input`),
preprocess.json, task.json, labels.txt and metadata.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeship.examples.common import GeneratorVersion, save_npz
from edgeship.examples.pinned import MEDIAPIPE
from edgeship_runtime.artifact import sha256_file

MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
SIZE = 128
# mediapipe/modules/face_detection/face_detection_short_range.pbtxt (0.10.14) sets these options of
# face_detection.pbtxt's SsdAnchorsCalculator, TensorsToDetectionsCalculator and NonMaxSuppressionCalculator.
TASK = {
    "name": "detect", "decoder": "ssd", "output": "regressors", "scores_output": "classificators", "classes": ["face"],
    "num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "input_size_height": SIZE, "input_size_width": SIZE,
    "anchor_offset_x": 0.5, "anchor_offset_y": 0.5, "strides": [8, 16, 16, 16], "aspect_ratios": [1.0],
    "reduce_boxes_in_lowest_layer": False, "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True,
    "x_scale": 128.0, "y_scale": 128.0, "w_scale": 128.0, "h_scale": 128.0, "num_coords": 16, "box_coord_offset": 0,
    "keypoint_coord_offset": 4, "num_keypoints": 6, "sigmoid_score": True, "score_clipping_thresh": 100.0,
    "reverse_output_order": True, "min_score_thresh": 0.5, "nms": "weighted", "iou": 0.3,
}
# ImageToTensorCalculator in face_detection.pbtxt: keep_aspect_ratio (letterbox), output_tensor_float_range
# [-1, 1]: pixel / 127.5 - 1. (Its letterbox pads with 0 in [-1, 1], mid-grey; the demo's pads 114.)
PREPROCESS = {"color": "rgb", "scale": 1 / 127.5, "mean": [1.0, 1.0, 1.0], "std": [1.0, 1.0, 1.0], "resize": "letterbox",
              "layout": "NHWC"}


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    camera = np.repeat(data.camera()[..., None], 3, axis=2)
    return {"astronaut": data.astronaut(), "camera": camera, "coffee": data.coffee(), "rocket": data.rocket(), "chelsea": data.chelsea()}


def _square(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return image[top:top + size, left:left + size]


def _resized(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(np.ascontiguousarray(image), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def model_input(image: np.ndarray) -> np.ndarray:
    """[128, 128, 3] float32 in [-1, 1] from a square RGB uint8 image."""
    return _resized(image).astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def eval_images() -> dict[str, np.ndarray]:
    """Name -> square RGB image; fp32 finds a face on those named with a person (two on the pair)."""
    photos = _photos()
    astronaut, camera = photos["astronaut"], photos["camera"]
    pair = np.concatenate([_resized(_square(astronaut, 0, 100, 300)), _resized(_square(camera, 0, 150, 250))], axis=1)
    return {
        "astronaut": astronaut, "astronaut-face": _square(astronaut, 0, 100, 300), "astronaut-close": _square(astronaut, 30, 140, 180),
        "astronaut-left": _square(astronaut, 0, 0, 400), "astronaut-mirrored": astronaut[:, ::-1],
        "camera": camera, "camera-face": _square(camera, 0, 150, 250), "camera-face-mirrored": _square(camera, 0, 150, 250)[:, ::-1],
        "camera-middle": _square(camera, 0, 100, 360),
        "pair": np.concatenate([pair, np.zeros_like(pair)], axis=0),  # two faces side by side, above black
        "astronaut-lower": _square(astronaut, 312, 0, 200), "coffee": _square(photos["coffee"], 0, 100, 400),
        "rocket": _square(photos["rocket"], 0, 0, 427),
    }


def calibration_images() -> list[np.ndarray]:
    """Other crops of the same photos (realistic activations; no labels needed)."""
    photos = _photos()
    astronaut, camera = photos["astronaut"], photos["camera"]
    return [_square(astronaut, 20, 80, 340), _square(astronaut, 0, 60, 512)[:, ::-1], _square(astronaut, 50, 120, 220),
            _square(camera, 10, 120, 300), _square(camera, 40, 60, 440)[:, ::-1], _square(camera, 20, 180, 200),
            _square(photos["coffee"], 0, 200, 400), _square(photos["chelsea"], 0, 150, 300)]



def build_face_detection(folder: Path) -> Path:
    folder.mkdir(parents=True)
    MEDIAPIPE.extract(MEMBER, folder / "model.tflite")
    images = eval_images()
    (folder / "calib").mkdir()
    for index, image in enumerate(calibration_images()):
        np.save(folder / "calib" / f"{index:03d}.npy", model_input(image)[None])
    eval_x = np.stack([model_input(image) for image in images.values()])
    save_npz(folder / "eval.npz", {"input": eval_x})
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    (folder / "preprocess.json").write_text(json.dumps(PREPROCESS, indent=2) + "\n")
    (folder / "labels.txt").write_text("face\n")
    metadata = {
        "name": "face-detection",
        "description": "MediaPipe BlazeFace short range face detector (face_detection_short_range.tflite, pretrained, Apache-2.0) "
                       f"from the mediapipe 0.10.14 wheel (sha256 {MEDIAPIPE.sha256}). Input RGB NHWC 128x128 in [-1, 1]; "
                       "outputs regressors [1,896,16] (box and 6 keypoints per anchor) and classificators [1,896,1] (face logits), "
                       "read by the ssd decoder with anchors generated from MediaPipe's options (task.json).",
        "source": {**MEDIAPIPE.source("Apache-2.0 (MediaPipe and its models)", "google-ai-edge/mediapipe"), "member": MEMBER},
        "weights": "pretrained (MediaPipe BlazeFace short range, via the mediapipe 0.10.14 wheel)",
        "input": {"name": "input", "shape": [1, SIZE, SIZE, 3], "layout": "NHWC", "preprocess": PREPROCESS},
        "labels": ["face"],
        "task": TASK,
        "eval": {"samples": len(images), "names": list(images),
                 "from": "square crops, mirrors and scales of scikit-image's astronaut and camera photos (one face each), both side "
                         "by side (two faces), and crops without a face (the astronaut's lower half, coffee, rocket); no labels: "
                         "judged against fp32's boxes"},
        "calibration": {"samples": len(calibration_images()), "from": "other crops and mirrors of astronaut, camera, coffee, chelsea"},
        "model_sha256": sha256_file(folder / "model.tflite"),
        "generator": GENERATOR,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return folder


GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"face-detection": build_face_detection}
