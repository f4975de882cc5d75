"""A person segmenter with a MediaPipe kernel that the rk3588 and tflite targets rewrite.

- selfie-segmentation: MediaPipe's selfie segmentation (general model, selfie_segmentation.tflite,
  Apache-2.0) from the mediapipe 0.10.14 wheel (pinned in edgeship.examples.pinned; read out, never
  imported). Input RGB NHWC 256x256 in [0, 1] (its graph's ImageToTensorCalculator: the frame
  stretched to the input, float range 0..1); output `activation_10` [1, 256, 256, 1], the person
  probability after the model's own sigmoid, read by the segment task at threshold 0.5. Its last
  upsampling is MediaPipe's Convolution2DTransposeBias kernel, which targets/mediapipe_kernels.py
  rewrites into TRANSPOSE_CONV + ADD before the toolchain reads the model.

Eval and calibration images are crops and mirrors of scikit-image's photos with a person (astronaut,
camera) and without (coffee, rocket), so a lost person and a person found where there is none both
show against fp32's masks. (fp32 itself marks a fifth to two thirds of the coffee photos as a person:
the model is made for selfies, and judges a frame that holds little else by what it has.)

It lands in examples/selfie-segmentation/: model.tflite, calib/NNN.npy, eval.npz (`input_1`),
preprocess.json, task.json, labels.txt and metadata.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeship.examples.common import GeneratorVersion, save_npz
from edgeship.examples.faces import _photos, _square
from edgeship.examples.pinned import MEDIAPIPE
from edgeship_runtime.artifact import sha256_file

MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
SIZE = 256
INPUT, OUTPUT = "input_1", "activation_10"
# One-channel probabilities already (the model ends in a sigmoid): the task thresholds them.
TASK = {"name": "segment", "output": OUTPUT, "layout": "NHWC", "threshold": 0.5}
PREPROCESS = {"color": "rgb", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "stretch", "layout": "NHWC"}
LABELS = ("background", "person")


def model_input(image: np.ndarray) -> np.ndarray:
    """[256, 256, 3] float32 in [0, 1] from an RGB uint8 image (stretched, as MediaPipe's graph does)."""
    import cv2

    return cv2.resize(np.ascontiguousarray(image), (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / np.float32(255)


def eval_images() -> dict[str, np.ndarray]:
    """Name -> RGB image; a person in those named after astronaut and camera, none in the others."""
    photos = _photos()
    astronaut, camera = photos["astronaut"], photos["camera"]
    return {
        "astronaut": astronaut, "astronaut-mirrored": astronaut[:, ::-1], "astronaut-upper": _square(astronaut, 0, 60, 400),
        "astronaut-left": _square(astronaut, 0, 0, 360), "camera": camera, "camera-mirrored": camera[:, ::-1],
        "camera-middle": _square(camera, 0, 100, 360), "camera-close": _square(camera, 20, 140, 280),
        "coffee": photos["coffee"], "coffee-crop": _square(photos["coffee"], 0, 100, 400),
        "rocket": photos["rocket"], "rocket-crop": _square(photos["rocket"], 0, 0, 427),
    }


def calibration_images() -> list[np.ndarray]:
    """Other crops of the same photos (realistic activations; no labels needed)."""
    photos = _photos()
    astronaut, camera = photos["astronaut"], photos["camera"]
    return [_square(astronaut, 20, 80, 340), _square(astronaut, 50, 120, 300)[:, ::-1], _square(camera, 10, 120, 300),
            _square(camera, 40, 60, 440)[:, ::-1], _square(photos["coffee"], 0, 200, 400), _square(photos["rocket"], 0, 100, 400),
            _square(photos["chelsea"], 0, 150, 300), _square(astronaut, 200, 200, 300)]


def build_selfie_segmentation(folder: Path) -> Path:
    folder.mkdir(parents=True)
    MEDIAPIPE.extract(MEMBER, folder / "model.tflite")
    images, calibration = eval_images(), calibration_images()
    (folder / "calib").mkdir()
    for index, image in enumerate(calibration):
        np.save(folder / "calib" / f"{index:03d}.npy", model_input(image)[None])
    save_npz(folder / "eval.npz", {INPUT: np.stack([model_input(image) for image in images.values()])})
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    (folder / "preprocess.json").write_text(json.dumps(PREPROCESS, indent=2) + "\n")
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    metadata = {
        "name": "selfie-segmentation",
        "description": "MediaPipe selfie segmentation, general model (selfie_segmentation.tflite, pretrained, Apache-2.0) from the "
                       f"mediapipe 0.10.14 wheel (sha256 {MEDIAPIPE.sha256}). Input RGB NHWC 256x256 in [0, 1]; output "
                       f"{OUTPUT} [1,256,256,1], the person probability (sigmoid), thresholded at 0.5 by the segment task. Its "
                       "Convolution2DTransposeBias kernel is rewritten into TRANSPOSE_CONV + ADD by the rk3588 and tflite targets.",
        "source": {**MEDIAPIPE.source("Apache-2.0 (MediaPipe and its models)", "google-ai-edge/mediapipe"), "member": MEMBER},
        "weights": "pretrained (MediaPipe selfie segmentation, via the mediapipe 0.10.14 wheel)",
        "input": {"name": INPUT, "shape": [1, SIZE, SIZE, 3], "layout": "NHWC", "preprocess": PREPROCESS},
        "labels": list(LABELS),
        "task": TASK,
        "eval": {"samples": len(images), "names": list(images),
                 "from": "scikit-image's astronaut and camera photos (a person each: whole, mirrored, crops) and coffee and rocket "
                         "(no person; fp32 still marks part of the coffee photos as a person); no labels: judged against fp32's masks"},
        "calibration": {"samples": len(calibration), "from": "other crops and mirrors of astronaut, camera, coffee, rocket, chelsea"},
        "model_sha256": sha256_file(folder / "model.tflite"),
        "generator": GENERATOR,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return folder


GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"selfie-segmentation": build_selfie_segmentation}
