"""The PP-OCR examples (edgeship.examples.ppocr) and the text they are tested on (text_render).

Tests that need PaddleOCR's models fetch the pinned rapidocr-onnxruntime wheel once per machine
(PyPI through pip); they are skipped only when pip cannot download it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeship.errors import EdgeshipError
from edgeship.report.media import text_video
from edgeship.examples import ppocr, text_render


@pytest.fixture(scope="module")
def wheel() -> Path:
    try:
        return ppocr.fetch_wheel()
    except EdgeshipError as error:
        if "could not download" in str(error):
            pytest.skip(f"the PP-OCR models cannot be had here: {error}")
        raise


@pytest.fixture(scope="module")
def built(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ppocr")
    for name, build in ppocr.BUILDERS.items():
        assert build(root / name) == root / name
    return root


@pytest.fixture(scope="module")
def rec_classes(built) -> list[str]:
    return json.loads((built / "ppocr-rec" / "labels.json").read_text(encoding="utf-8"))


# --- rendering --------------------------------------------------------------------------------

def test_a_scene_is_the_same_for_the_same_seed_and_differs_for_another():
    first, first_items = text_render.render_scene(np.random.default_rng(7))
    again, again_items = text_render.render_scene(np.random.default_rng(7))
    other, _ = text_render.render_scene(np.random.default_rng(8))
    assert first.dtype == np.uint8 and first.shape == (480, 640, 3)
    assert first.tobytes() == again.tobytes() and first_items == again_items
    assert first.tobytes() != other.tobytes()
    assert 3 <= len(first_items) <= 6


def test_a_line_crop_is_the_same_for_the_same_seed():
    crop, item = text_render.render_line_crop(np.random.default_rng(3))
    again, again_item = text_render.render_line_crop(np.random.default_rng(3))
    assert crop.tobytes() == again.tobytes() and item == again_item


def test_the_boxes_enclose_the_ink_and_fit_it_closely():
    # A flat background and bare ink only, so every changed pixel is ink (the grain is 2 grey levels).
    flat = np.full((480, 640, 3), 230, np.uint8)
    for seed in range(4):
        image, items = text_render.render_scene(np.random.default_rng(seed), background=flat, plate_share=0.0,
                                                upside_down=0.5, lines=(5, 6))
        ink = np.abs(image.astype(np.int16) - 230).max(axis=-1) > 40
        covered = np.zeros_like(ink)
        for item in items:
            x1, y1, x2, y2 = item.box
            covered[y1:y2, x1:x2] = True
            inside = np.argwhere(ink[y1:y2, x1:x2])
            assert len(inside), item
            # strong ink reaches within 2 pixels of every side (faint anti-aliasing makes the rest)
            assert inside[:, 0].min() <= 2 and inside[:, 1].min() <= 2, item
            assert inside[:, 0].max() >= y2 - y1 - 3 and inside[:, 1].max() >= x2 - x1 - 3, item
            line = item.line_box(640, 480)
            assert line[0] <= x1 and line[1] <= y1 and line[2] >= x2 and line[3] >= y2
        assert not (ink & ~covered).any(), f"seed {seed}: ink outside every box"
        assert {item.angle for item in items} <= {0.0, 180.0}


def test_an_upside_down_crop_is_the_upright_one_turned_with_its_box():
    upright, item = text_render.render_line_crop(np.random.default_rng(11))
    turned, turned_item = text_render.render_line_crop(np.random.default_rng(11), upside_down=True)
    height, width = upright.shape[:2]
    assert np.array_equal(turned, upright[::-1, ::-1])
    assert (item.angle, turned_item.angle) == (0.0, 180.0)
    x1, y1, x2, y2 = item.box
    assert turned_item.box == (width - x2, height - y2, width - x1, height - y1)
    assert 0 < x1 < x2 < width and 0 < y1 < y2 < height  # the crop keeps a margin around the ink


def test_the_font_is_found():
    assert text_render.font_path().name == "DejaVuSans.ttf"


def test_the_demo_video_has_its_frames_and_ground_truth(tmp_path):
    path, truth = text_video(tmp_path / "demo.avi", frames=6, seed=1)
    again, again_truth = text_video(tmp_path / "again.avi", frames=6, seed=1)
    assert path == tmp_path / "demo.avi" and not list(tmp_path.glob("*.partial.avi"))
    assert path.read_bytes() == again.read_bytes() and truth == again_truth
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 6 and frames[0].shape == (480, 640, 3)
    assert [entry["frame"] for entry in truth] == list(range(6))
    for entry in truth:
        assert len(entry["items"]) == 4
        for item in entry["items"]:
            x1, y1, x2, y2 = item["box"]
            ix1, iy1, ix2, iy2 = item["ink_box"]
            assert 0 <= x1 <= ix1 < ix2 <= x2 <= 640 and 0 <= y1 <= iy1 < iy2 <= y2 <= 480
            assert item["text"] in text_render.WORDS and abs(item["angle"]) <= 8
    # the signs move
    assert truth[0]["items"][0]["box"] != truth[5]["items"][0]["box"]


# --- model inputs -----------------------------------------------------------------------------

def test_a_line_is_resized_to_height_48_and_padded_with_zeros_like_paddleocr():
    red = np.zeros((30, 60, 3), np.uint8)
    red[..., 0] = 255
    line = ppocr.line_input(red, 320)
    assert line.shape == (3, 48, 320) and line.dtype == np.float32
    # 60/30 keeps its aspect: 96 columns of image (BGR, so red is the last channel), then zeros
    assert np.allclose(line[2, :, :96], 1.0) and np.allclose(line[0, :, :96], -1.0)
    assert not line[:, :, 96:].any()
    squeezed = ppocr.line_input(np.full((10, 1000, 3), 255, np.uint8), 192)
    assert squeezed.shape == (3, 48, 192) and np.allclose(squeezed, 1.0)


def test_the_detector_input_is_bgr_with_imagenet_statistics():
    blue = np.zeros((32, 64, 3), np.uint8)
    blue[..., 2] = 255
    x = ppocr.det_input(blue)
    assert x.shape == (3, 32, 64) and x.dtype == np.float32
    assert np.allclose(x[0], (1 - 0.485) / 0.229) and np.allclose(x[2], (0 - 0.406) / 0.225)


# --- the wheel --------------------------------------------------------------------------------

def test_a_tampered_wheel_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    fake = ppocr.wheel_path()
    assert fake.is_relative_to(tmp_path / "cache")
    fake.parent.mkdir(parents=True)
    with zipfile.ZipFile(fake, "w") as archive:
        for member in ppocr.WHEEL_MEMBERS.values():
            archive.writestr(member, b"not a model")
    found = hashlib.sha256(fake.read_bytes()).hexdigest()
    with pytest.raises(EdgeshipError, match="is not the pinned") as caught:
        ppocr.extract_model("det", tmp_path / "model.onnx")
    message = str(caught.value)
    assert str(fake) in message and found in message and ppocr.WHEEL_SHA256 in message and "\n" not in message
    assert not (tmp_path / "model.onnx").exists()


def test_a_wheel_that_cannot_be_downloaded_is_named_with_the_way_to_bring_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    # an index nobody answers on, and no pip configuration or cache that could hold the wheel
    for name, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_CACHE_DIR": "1",
                        "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(EdgeshipError, match="pip could not download rapidocr-onnxruntime==1.4.4") as caught:
        ppocr.fetch_wheel()
    assert str(ppocr.wheel_path()) in str(caught.value) and "\n" not in str(caught.value)
    assert not ppocr.wheel_path().exists() and not list(ppocr.wheel_path().parent.iterdir())


def test_every_rendered_character_is_in_the_recognizer_dictionary(rec_classes, built):
    assert len(rec_classes) == 6625 and rec_classes[0] == "<blank>" and rec_classes[-1] == " "
    dictionary = set(rec_classes[1:])
    assert not {char for word in text_render.WORDS for char in word} - dictionary
    assert not {char for text in np.load(built / "ppocr-rec" / "eval.npz")["labels"] for char in str(text)} - dictionary


# --- the examples -----------------------------------------------------------------------------

def _metadata(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text())


@pytest.mark.parametrize("name, shape", [("ppocr-det", [1, 3, 480, 640]), ("ppocr-cls", [1, 3, 48, 192]), ("ppocr-rec", [1, 3, 48, 320])])
def test_each_example_has_its_files_and_shapes(built, wheel, name, shape):
    import onnx

    folder = built / name
    metadata = _metadata(folder)
    assert metadata["name"] == name and metadata["input_shape"] == {"x": shape}
    assert metadata["weights"] == "pretrained (PaddleOCR, via rapidocr-onnxruntime 1.4.4)"
    assert metadata["source"]["wheel_sha256"] == ppocr.WHEEL_SHA256 and metadata["fp32_figures"]
    assert metadata["generator"] == ppocr.GENERATOR
    with zipfile.ZipFile(wheel) as archive:  # the model is the wheel's own, byte for byte
        assert (folder / "model.onnx").read_bytes() == archive.read(metadata["source"]["member"])
    model = onnx.load(str(folder / "model.onnx"))
    assert [graph_input.name for graph_input in model.graph.input] == ["x"]
    preprocess = json.loads((folder / "preprocess.json").read_text())
    # the detector takes the frame stretched; a text line keeps its aspect and is padded on the right, as PaddleOCR's resize_norm_img does
    assert preprocess["color"] == "bgr" and preprocess["scale"] == 1 / 255
    assert preprocess["resize"] == ("stretch" if name == "ppocr-det" else "pad")
    calibration = sorted((folder / "calib").glob("*.npy"))
    assert [path.name for path in calibration[:2]] == ["000.npy", "001.npy"]
    for path in calibration:
        sample = np.load(path)
        assert sample.shape == tuple(shape) and sample.dtype == np.float32
    evaluation = np.load(folder / "eval.npz")
    assert evaluation["x"].shape[1:] == tuple(shape[1:]) and evaluation["x"].dtype == np.float32
    assert np.isfinite(evaluation["x"]).all()


def test_the_detector_labels_one_box_per_line_inside_its_scene(built):
    folder = built / "ppocr-det"
    evaluation = np.load(folder / "eval.npz")
    labels = evaluation["labels"]
    assert labels.dtype == np.float32 and labels.shape[1] == 6
    assert len(evaluation["x"]) == 16 and len(list((folder / "calib").iterdir())) == 24
    assert set(labels[:, 0].astype(int)) == set(range(16)) and (labels[:, 5] == 0).all()
    assert (labels[:, 1] >= 0).all() and (labels[:, 3] <= 640).all() and (labels[:, 2] >= 0).all() and (labels[:, 4] <= 480).all()
    assert (labels[:, 3] > labels[:, 1]).all() and (labels[:, 4] > labels[:, 2]).all()
    for index in range(16):
        boxes = labels[labels[:, 0] == index, 1:5]
        for first in range(len(boxes)):
            for second in range(first + 1, len(boxes)):
                a, b = boxes[first], boxes[second]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], f"scene {index}: lines overlap"
    assert json.loads((folder / "task.json").read_text()) == {"name": "detect", "decoder": "db", "thresh": 0.3,
                                                              "box_thresh": 0.6, "unclip_ratio": 1.5}
    assert (folder / "labels.txt").read_text() == "text\n"


def test_the_classifier_labels_half_of_its_crops_upside_down(built):
    folder = built / "ppocr-cls"
    evaluation = np.load(folder / "eval.npz")
    assert evaluation["labels"].dtype == np.int64 and evaluation["labels"].shape == (64,)
    assert evaluation["labels"].sum() == 32 and set(evaluation["labels"].tolist()) == {0, 1}
    assert (folder / "labels.txt").read_text() == "0\n180\n"
    assert json.loads((folder / "task.json").read_text()) == {"name": "classify"}
    assert len(list((folder / "calib").iterdir())) == 32


def test_the_recognizer_labels_each_crop_with_its_text(built, rec_classes):
    import onnx

    folder = built / "ppocr-rec"
    evaluation = np.load(folder / "eval.npz")  # no pickles: the texts are a unicode array
    assert evaluation["labels"].dtype.kind == "U" and evaluation["labels"].shape == (64,)
    assert set(evaluation["labels"].tolist()) <= set(text_render.WORDS)
    output = onnx.load(str(folder / "model.onnx")).graph.output[0]
    assert output.type.tensor_type.shape.dim[-1].dim_value == len(rec_classes)
    assert json.loads((folder / "task.json").read_text()) == {"name": "ocr-rec"}
    # padded on the right with zeros, as PaddleOCR pads, and never squeezed
    assert (evaluation["x"][:, :, :, -1] == 0).all()


def test_a_second_build_writes_the_same_bytes(built, tmp_path):
    again = ppocr.build_cls(tmp_path / "ppocr-cls")
    for path in sorted(again.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (built / "ppocr-cls" / path.relative_to(again)).read_bytes(), path.name


# --- the fp32 figures in metadata.json, measured again with independent reference decoders -----

def _db_boxes(probability: np.ndarray, thresh: float, box_thresh: float, unclip_ratio: float) -> list[tuple]:
    """Axis-aligned boxes of a DB map: PaddleOCR's DBPostProcess (fast score) with the unclip
    offset of a rectangle (area * ratio / perimeter on every side) done in closed form."""
    contours, _ = cv2.findContours((probability > thresh).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    height, width = probability.shape
    boxes = []
    for contour in contours:
        (cx, cy), (rect_width, rect_height), angle = cv2.minAreaRect(contour)
        if min(rect_width, rect_height) < 3:
            continue
        corners = cv2.boxPoints(((cx, cy), (rect_width, rect_height), angle))
        x1, y1 = np.clip(np.floor(corners.min(0)).astype(int), 0, [width - 1, height - 1])
        x2, y2 = np.clip(np.ceil(corners.max(0)).astype(int), 0, [width - 1, height - 1])
        mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.uint8)
        cv2.fillPoly(mask, [(corners - [x1, y1]).astype(np.int32)], 1)
        if cv2.mean(probability[y1:y2 + 1, x1:x2 + 1], mask)[0] < box_thresh:
            continue
        offset = rect_width * rect_height * unclip_ratio / (2 * (rect_width + rect_height))
        grown = cv2.boxPoints(((cx, cy), (rect_width + 2 * offset, rect_height + 2 * offset), angle))
        boxes.append((max(0, grown[:, 0].min()), max(0, grown[:, 1].min()), min(width, grown[:, 0].max()), min(height, grown[:, 1].max())))
    return boxes


def _iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _matches(predictions, truths, threshold=0.5) -> int:
    pairs = sorted(((_iou(p, t), i, j) for i, p in enumerate(predictions) for j, t in enumerate(truths)), reverse=True)
    used_predictions, used_truths = set(), set()
    for iou, i, j in pairs:
        if iou >= threshold and i not in used_predictions and j not in used_truths:
            used_predictions.add(i)
            used_truths.add(j)
    return len(used_truths)


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (char_a != char_b))
    return row[-1]


def _session(path: Path):
    onnxruntime = pytest.importorskip("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(folder: Path) -> tuple[np.ndarray, dict]:
    evaluation = dict(np.load(folder / "eval.npz"))
    session = _session(folder / "model.onnx")
    outputs = np.concatenate([session.run(None, {"x": evaluation["x"][i:i + 8]})[0] for i in range(0, len(evaluation["x"]), 8)])
    return outputs, evaluation


def test_the_recorded_fp32_figures_are_what_the_models_give(built, rec_classes):
    folder = built / "ppocr-det"
    task = json.loads((folder / "task.json").read_text())
    maps, evaluation = _run(folder)
    true_positives = predicted = 0
    for index, probability in enumerate(maps[:, 0]):
        boxes = _db_boxes(probability, task["thresh"], task["box_thresh"], task["unclip_ratio"])
        truths = [tuple(row[1:5]) for row in evaluation["labels"] if row[0] == index]
        true_positives += _matches(boxes, truths)
        predicted += len(boxes)
    precision, recall = true_positives / predicted, true_positives / len(evaluation["labels"])
    det = _metadata(folder)["fp32_figures"]
    assert det["f1"] == pytest.approx(2 * precision * recall / (precision + recall), abs=0.02)
    assert det["f1"] >= 0.8

    logits, evaluation = _run(built / "ppocr-cls")
    cls = _metadata(built / "ppocr-cls")["fp32_figures"]
    assert cls["accuracy"] == pytest.approx(float((logits.argmax(1) == evaluation["labels"]).mean()), abs=1.5 / 64)
    assert cls["accuracy"] >= 0.9

    steps, evaluation = _run(built / "ppocr-rec")
    errors = errors_without_spaces = length = length_without_spaces = 0
    for probabilities, truth in zip(steps, evaluation["labels"].tolist(), strict=True):
        best = probabilities.argmax(-1)
        kept = [index for step, index in enumerate(best) if index != 0 and (step == 0 or index != best[step - 1])]
        text = "".join(rec_classes[index] for index in kept)
        errors += _edit_distance(text, truth)
        length += len(truth)
        errors_without_spaces += _edit_distance(text.replace(" ", ""), truth.replace(" ", ""))
        length_without_spaces += len(truth.replace(" ", ""))
    rec = _metadata(built / "ppocr-rec")["fp32_figures"]
    assert rec["char_accuracy"] == pytest.approx(1 - errors / length, abs=0.01)
    assert rec["char_accuracy_ignoring_spaces"] == pytest.approx(1 - errors_without_spaces / length_without_spaces, abs=0.01)
    assert rec["char_accuracy"] >= 0.9
