"""The hand-landmark example: MediaPipe's hand_landmark_lite.tflite (pretrained, Apache-2.0) from the
pinned mediapipe 0.10.14 wheel (read out of the wheel, never imported), task keypoints.

The model takes a 224x224 RGB crop in [0, 1] (NHWC) and gives 21 hand landmarks in input pixels
(`Identity` [1, 63]: x, y and a relative depth per point), a hand presence score already through a
sigmoid (`Identity_1` [1, 1], 0..1), the handedness (`Identity_2` [1, 1]) and world landmarks in
metres (`Identity_3` [1, 63]).

No photo of a hand ships in scikit-image, and nothing is downloaded. The eval set is crops of its
photos (the cat's fur, the cameraman's coat and tripod, the brick wall, the scikit-image logo),
turned by quarter turns, that the fp32 model takes for a hand: each was found by scoring every
crop of 48 to 256 pixels (a third of their size apart) at four quarter turns of 13 photos with the
fp32 model (ai_edge_litert 2.3.0, XNNPACK), 94,812 crops in all, and keeping the highest. There is
no hand in them: they judge whether a converted model puts the 21 points where fp32 does on
inputs fp32 is sure of, which is what keypoints' metrics measure, and nothing about the model's
accuracy on real hands (the eval set has no labels). The top-left squares of two photos where fp32
finds no hand (presence 0.0007 and 0.0016) show those samples left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeship.examples.common import GeneratorVersion, save_npz
from edgeship.examples.pinned import MEDIAPIPE
from edgeship_runtime.artifact import sha256_file

MEMBER = "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite"
SIZE = 224
PREPROCESS = {"color": "rgb", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "center_crop", "layout": "NHWC"}
# MediaPipe's HAND_CONNECTIONS (mediapipe/python/solutions/hands_connections.py): palm, thumb, fingers.
HAND_CONNECTIONS = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
                    [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]]
PRESENCE_THRESHOLD = 0.5  # MediaPipe's min_hand_presence_confidence default
TASK = {"name": "keypoints", "output": "Identity", "num_keypoints": 21, "dims": 3, "coordinates": "pixels",
        "presence": "Identity_1", "presence_threshold": PRESENCE_THRESHOLD, "normalize_by": "object", "pck_threshold": 0.05,
        "edges": HAND_CONNECTIONS}
# (photo, top, left, size, quarter turns) -> fp32 presence measured on the host (ai_edge_litert 2.3.0)
EVAL_CROPS = {
    ("logo", 85, 170, 256, 1): 0.947, ("chelsea", 208, 260, 80, 1): 0.925, ("chelsea", 0, 352, 48, 3): 0.922,
    ("camera", 192, 0, 48, 2): 0.890, ("camera", 234, 182, 80, 3): 0.877, ("logo", 128, 256, 192, 1): 0.846,
    ("brick", 368, 208, 48, 1): 0.822, ("camera", 210, 168, 128, 3): 0.817, ("brick", 240, 224, 48, 3): 0.816,
    ("camera", 176, 112, 48, 2): 0.807, ("brick", 368, 304, 48, 3): 0.797, ("brick", 160, 48, 48, 3): 0.769,
}
NO_HAND = {"astronaut": 0.0007, "coffee": 0.0016}  # the top-left square of each photo, fp32 presence
CALIBRATION_CROPS = [("brick", 368, 208, 48, 3), ("chelsea", 26, 312, 80, 3), ("camera", 160, 368, 48, 3), ("chelsea", 240, 16, 48, 3),
                     ("camera", 234, 130, 80, 2), ("logo", 85, 170, 256, 2), ("astronaut", 48, 16, 48, 3), ("rocket", 352, 128, 48, 0)]
CALIBRATION_PHOTOS = ("camera", "chelsea")


def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as uint8 RGB (grey ones repeated, the logo's alpha dropped)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


def model_input(image: np.ndarray, turns: int = 0) -> np.ndarray:
    """[224, 224, 3] float32 in [0, 1] from a square uint8 RGB image, turned by quarter turns."""
    import cv2

    shrinking = image.shape[0] > SIZE
    resized = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(np.rot90(resized / 255.0, turns), dtype=np.float32)


def crop_input(photo: str, top: int, left: int, size: int, turns: int) -> np.ndarray:
    return model_input(_photo(photo)[top:top + size, left:left + size], turns)


def eval_inputs() -> np.ndarray:
    crops = [crop_input(*crop) for crop in EVAL_CROPS]
    return np.stack(crops + [model_input(_photo(name)[:min(_photo(name).shape[:2]), :min(_photo(name).shape[:2])]) for name in NO_HAND])


def calibration_inputs() -> list[np.ndarray]:
    photos = [model_input(_photo(name)[:min(_photo(name).shape[:2]), :min(_photo(name).shape[:2])]) for name in CALIBRATION_PHOTOS]
    return [crop_input(*crop) for crop in CALIBRATION_CROPS] + photos



def build_hand_landmark(folder: Path) -> Path:
    folder.mkdir(parents=True)
    MEDIAPIPE.extract(MEMBER, folder / "model.tflite")
    (folder / "calib").mkdir()
    calibration = calibration_inputs()
    for index, sample in enumerate(calibration):
        np.save(folder / "calib" / f"{index:03d}.npy", sample[None])
    eval_x = eval_inputs()
    save_npz(folder / "eval.npz", {"input_1": eval_x})
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    (folder / "preprocess.json").write_text(json.dumps(PREPROCESS, indent=2) + "\n")
    found = sum(score >= PRESENCE_THRESHOLD for score in EVAL_CROPS.values())
    metadata = {
        "name": "hand-landmark",
        "description": "MediaPipe hand landmark lite (hand_landmark_lite.tflite, pretrained, Apache-2.0) from the mediapipe 0.10.14 "
                       f"wheel (sha256 {MEDIAPIPE.sha256}). Input RGB NHWC 224x224 in [0, 1]; outputs 21 landmarks x, y, depth in "
                       "input pixels (Identity [1,63]), hand presence 0..1 (Identity_1), handedness (Identity_2), world landmarks "
                       "(Identity_3 [1,63]); task keypoints with MediaPipe's HAND_CONNECTIONS as the skeleton.",
        "source": {**MEDIAPIPE.source("Apache-2.0 (MediaPipe and its models)", "google-ai-edge/mediapipe"), "member": MEMBER},
        "weights": "pretrained (MediaPipe hand landmark lite, via the mediapipe 0.10.14 wheel)",
        "input": {"name": "input_1", "shape": [1, SIZE, SIZE, 3], "layout": "NHWC", "preprocess": PREPROCESS},
        "task": TASK,
        "eval": {"samples": len(eval_x), "fp32_finds_a_hand": found, "fp32_presence": [*EVAL_CROPS.values(), *NO_HAND.values()],
                 "from": f"NO HAND PHOTOS: {len(EVAL_CROPS)} square crops (photo, top, left, size, quarter turns: "
                         f"{[list(crop) for crop in EVAL_CROPS]}) of scikit-image photos that fp32 takes for a hand (presence "
                         f"0.77-0.95; there is no hand in them), found by scoring 94,812 crops of 13 photos with fp32, and "
                         f"the top-left squares of {len(NO_HAND)} photos where fp32 finds none ({', '.join(NO_HAND)}); no labels: judged against "
                         "fp32's landmarks on the samples where fp32 finds a hand"},
        "calibration": {"samples": len(calibration), "from": "8 other crops fp32 scores 0.59-0.75, and the whole camera and chelsea photos"},
        "model_sha256": sha256_file(folder / "model.tflite"),
        "generator": GENERATOR,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return folder


GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"hand-landmark": build_hand_landmark}
