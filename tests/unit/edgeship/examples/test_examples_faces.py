"""The face-detection example (edgeship.examples.faces): MediaPipe's BlazeFace short range from the
pinned mediapipe wheel, read by the detect task's ssd decoder with generated anchors, finds the faces
in scikit-image's photos in fp32 and nothing where there is none.

The model comes from the pinned wheel, fetched once per machine; the tests are skipped only when pip
cannot download it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeship.examples import faces
from edgeship.examples.pinned import MEDIAPIPE
from edgeship_runtime.preprocess import Preprocess
from edgeship_runtime.preprocess import validate as validate_preprocess
from edgeship_runtime.tasks.decoders import decode
from edgeship_runtime.tasks.record import validate
from tests.support.models import mediapipe_wheel

FACES = {"astronaut": 1, "astronaut-face": 1, "astronaut-close": 1, "astronaut-left": 1, "astronaut-mirrored": 1, "camera": 1,
         "camera-face": 1, "camera-face-mirrored": 1, "camera-middle": 1, "pair": 2, "astronaut-lower": 0, "coffee": 0, "rocket": 0}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    mediapipe_wheel()  # skips only when pip cannot download it
    return faces.build_face_detection(tmp_path_factory.mktemp("faces") / "face-detection")


@pytest.fixture(scope="module")
def found(built) -> list[dict]:
    """fp32 detections per eval sample: the TFLite model on the CPU, decoded by the example's task file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(built / "model.tflite"))
    interpreter.allocate_tensors()
    (given,) = interpreter.get_input_details()
    outputs = [{"name": d["name"], "shape": d["shape"].tolist()} for d in interpreter.get_output_details()]
    record = validate(json.loads((built / "task.json").read_text()), outputs, ["face"], "task.json",
                      [{"name": given["name"], "shape": given["shape"].tolist()}])
    detections = []
    with np.load(built / "eval.npz") as data:
        for sample in data["input"]:
            interpreter.set_tensor(given["index"], sample[None])
            interpreter.invoke()
            values = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
            detections += decode(record, values)
    return detections


def test_the_example_holds_the_pinned_model_its_task_file_and_thirteen_samples(built):
    metadata = json.loads((built / "metadata.json").read_text())
    assert metadata["source"]["wheel_sha256"] == MEDIAPIPE.sha256 and metadata["source"]["member"] == faces.MEMBER
    assert (built / "model.tflite").read_bytes()[4:8] == b"TFL3"
    with np.load(built / "eval.npz") as data:
        assert data["input"].shape == (len(FACES), 128, 128, 3) and data["input"].dtype == np.float32
        assert data["input"].min() >= -1.0 and data["input"].max() <= 1.0
    assert metadata["eval"]["names"] == list(FACES)
    assert len(list((built / "calib").glob("*.npy"))) == 8
    assert metadata["generator"] == faces.GENERATOR


def test_fp32_finds_each_face_and_nothing_where_there_is_none(found):
    counts = {name: len(detections["boxes"]) for name, detections in zip(FACES, found)}
    assert counts == FACES
    scores = np.concatenate([d["scores"] for d in found])
    assert scores.min() >= 0.75, scores  # well above min_score_thresh 0.5: fp16's small moves flip none
    assert all(d["landmarks"].shape[1:] == (6, 2) for d in found)


def test_the_astronauts_face_is_where_it_is_in_the_photo(found):
    # astronaut-face is astronaut()[0:300, 100:400] at 128 px: her face spans about x 170-275, y 70-175 of the photo
    x1, y1, x2, y2 = found[1]["boxes"][0] * 300 / 128 + [100, 0, 100, 0]
    assert 150 < x1 < 190 and 250 < x2 < 290 and 50 < y1 < 90 and 155 < y2 < 195, (x1, y1, x2, y2)
    # the mirrored photo's face is the mirrored box
    full, mirrored = found[0]["boxes"][0], found[4]["boxes"][0]
    np.testing.assert_allclose([128 - mirrored[2], mirrored[1], 128 - mirrored[0], mirrored[3]], full, atol=4)
    # her eyes (keypoints 0 and 1) lie inside her box, above its middle
    eyes = found[1]["landmarks"][0, :2]
    box = found[1]["boxes"][0]
    assert np.all((eyes[:, 0] > box[0]) & (eyes[:, 0] < box[2]) & (eyes[:, 1] > box[1]) & (eyes[:, 1] < (box[1] + box[3]) / 2))


def test_the_preprocess_file_is_blazefaces_minus_one_to_one_rgb():
    spec = validate_preprocess(faces.PREPROCESS, {"name": "input", "shape": [1, 128, 128, 3]}, "preprocess.json")
    rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    fed = Preprocess("input", [1, 128, 128, 3], spec)(rgb[..., ::-1].copy())["input"][0]  # the demo feeds BGR frames
    np.testing.assert_allclose(fed, faces.model_input(rgb), atol=1e-6)
    assert fed.min() >= -1.0 and fed.max() <= 1.0
