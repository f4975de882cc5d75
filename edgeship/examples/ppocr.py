"""The PP-OCR examples: PaddleOCR's pretrained text detector, orientation classifier and text
recognizer, with labelled text rendered here (edgeship.examples.text_render).

The models are PaddleOCR's own (Apache-2.0) in ONNX form as the rapidocr-onnxruntime 1.4.4 wheel
ships them. The wheel is fetched once per machine with pip into the cache, its sha256 is checked
against the pin on every use, and only the three .onnx files are read out of it: none of
rapidocr's own code is imported or run.

- ppocr-det: PP-OCRv4 DBNet detector at 1x3x480x640; eval scenes of several lines on photos and
  paper, labelled with one box per line; the DB post-process settings in task.json.
- ppocr-cls: the 0/180 degree text orientation classifier at 1x3x48x192; crops of lines, half
  of them upside down.
- ppocr-rec: PP-OCRv4 CTC recognizer at 1x3x48x320; crops of lines labelled with their text, and
  labels.json, the model's 6625 CTC classes in order.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from edgeship.errors import EdgeshipError
from edgeship.examples import text_render
from edgeship.examples.common import GeneratorVersion, save_npz, write_metadata
from edgeship.examples.pinned import RAPIDOCR

WHEEL_SHA256 = RAPIDOCR.sha256
WHEEL_MEMBERS = {
    "det": "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
    "cls": "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "rec": "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
}
SEED = 0
# One random stream per data set, so adding samples to one never changes another.
STREAMS = {"det-eval": 1, "det-calib": 2, "cls-eval": 3, "cls-calib": 4, "rec-eval": 5, "rec-calib": 6}
SOURCE = RAPIDOCR.source("Apache-2.0 (rapidocr-onnxruntime and PaddleOCR's models)", "PaddlePaddle/PaddleOCR")
WEIGHTS = "pretrained (PaddleOCR, via rapidocr-onnxruntime 1.4.4)"

# PaddleOCR reads images as BGR. Its detector was trained on ImageNet mean/std (PaddleOCR's
# ch_PP-OCRv4_det config and tools/infer/predict_det.py; applied in the image's channel order, so
# B gets 0.485); its classifier and recognizer on (x/255 - 0.5)/0.5 (resize_norm_img).
# rapidocr's config uses 0.5/0.5 for the detector as well; on 40 rendered scenes the two gave
# F1 0.975 and 0.972 (ink boxes), so either works; we keep what the model was trained with.
DET_PREPROCESS = {"color": "bgr", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"}
# "pad": the height kept at 48, the aspect ratio kept, zeros after normalization on the right, as line_input does
LINE_PREPROCESS = {"color": "bgr", "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "resize": "pad"}
DET_SIZE = (480, 640)   # height, width: multiples of 32, as DBNet's down- and up-sampling needs
LINE_HEIGHT = 48
CLS_WIDTH, REC_WIDTH = 192, 320
DB_SETTINGS = {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5}  # PaddleOCR's DBPostProcess defaults for PP-OCRv4

# fp32 figures measured on the host (onnxruntime 1.32 CPU) on the eval sets these builders write,
# with independent reference decoders (tests/unit/edgeship/examples/test_examples_ppocr.py measures
# them again): det: a DB post-process with DB_SETTINGS, its boxes taken axis-aligned and matched
# one-to-one to the line boxes at IoU >= 0.5 (the one false detection splits "Pump 4" at its space);
# cls: argmax == label; rec: greedy CTC decode, 1 - edit distance / truth length summed over the crops.
# The recognizer (trained mostly on Chinese) drops or adds spaces; PaddleOCR's own RecMetric ignores
# spaces, hence the second pair of rec figures.
FP32_FIGURES = {
    "ppocr-det": {"f1": 0.9935, "precision": 0.987, "recall": 1.0, "boxes": 76, "detections": 77, "iou": 0.5},
    "ppocr-cls": {"accuracy": 1.0, "samples": 64},
    "ppocr-rec": {"char_accuracy": 0.963, "exact_match": 0.8125, "char_accuracy_ignoring_spaces": 0.9976,
                  "exact_match_ignoring_spaces": 0.9844, "samples": 64},
}


# --- the wheel -------------------------------------------------------------------------------

def wheel_path() -> Path:
    return RAPIDOCR.path()


def verify_wheel(path: Path) -> Path:
    return RAPIDOCR.verify(path)


def fetch_wheel() -> Path:
    """The verified rapidocr-onnxruntime wheel from the cache, downloaded with pip the first time."""
    return RAPIDOCR.fetch()


def extract_model(kind: str, destination: Path) -> Path:
    """Copy one of the wheel's models ("det", "cls" or "rec") to destination, byte for byte."""
    return RAPIDOCR.extract(WHEEL_MEMBERS[kind], destination)


def rec_classes(model: Path) -> list[str]:
    """The recognizer's CTC classes in output order: "<blank>", its `character` list, then " "
    (PaddleOCR's CTCLabelDecode with use_space_char), checked against the model's output width."""
    import onnx

    proto = onnx.load(str(model))
    characters = {prop.key: prop.value for prop in proto.metadata_props}.get("character")
    if characters is None:
        raise EdgeshipError(f"{model}: no `character` entry in the ONNX metadata; is it PP-OCR's recognizer?")
    classes = ["<blank>"] + characters.split("\n") + [" "]
    width = proto.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if len(classes) != width:
        raise EdgeshipError(f"{model}: {len(classes)} classes from its `character` list, but its output has {width}")
    return classes


# --- model inputs, as PaddleOCR makes them ----------------------------------------------------

def _normalize(bgr: np.ndarray, preprocess: dict) -> np.ndarray:
    scaled = bgr.astype(np.float32) * np.float32(preprocess["scale"])
    normalized = (scaled - np.asarray(preprocess["mean"], np.float32)) / np.asarray(preprocess["std"], np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1), dtype=np.float32)


def det_input(rgb: np.ndarray) -> np.ndarray:
    """[3, H, W] float32 for the detector from an RGB image already at the input size."""
    return _normalize(rgb[..., ::-1], DET_PREPROCESS)


def line_input(rgb: np.ndarray, width: int) -> np.ndarray:
    """[3, 48, width] float32 for the classifier or recognizer from an RGB crop, as PaddleOCR's
    resize_norm_img makes it: height 48 keeping the aspect (squeezed only when wider than
    `width`), normalized, then padded on the right with zeros (mid-grey after normalization)."""
    import cv2

    height, crop_width = rgb.shape[:2]
    resized_width = min(width, math.ceil(LINE_HEIGHT * crop_width / height))
    resized = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), (resized_width, LINE_HEIGHT))
    padded = np.zeros((3, LINE_HEIGHT, width), np.float32)
    padded[:, :, :resized_width] = _normalize(resized, LINE_PREPROCESS)
    return padded


def _fits(crop: np.ndarray, width: int) -> bool:
    return math.ceil(LINE_HEIGHT * crop.shape[1] / crop.shape[0]) <= width


# --- writing an example -----------------------------------------------------------------------

def _rng(stream: str) -> np.random.Generator:
    return np.random.default_rng((SEED, STREAMS[stream]))



def _write_example(folder: Path, kind: str, calibration: np.ndarray, eval_arrays: dict, task: dict,
                   preprocess: dict, metadata: dict) -> Path:
    folder.mkdir(parents=True)
    extract_model(kind, folder / "model.onnx")
    (folder / "calib").mkdir()
    for index, sample in enumerate(calibration):
        np.save(folder / "calib" / f"{index:03d}.npy", sample[None].astype(np.float32))
    save_npz(folder / "eval.npz", eval_arrays)
    if "labels" in metadata:
        (folder / "labels.txt").write_text("\n".join(metadata["labels"]) + "\n")
    (folder / "task.json").write_text(json.dumps(task, indent=2) + "\n")
    # what `invoke convert --preprocess` records in the artifact, for the camera demo
    (folder / "preprocess.json").write_text(json.dumps(preprocess, indent=2) + "\n")
    shape = [1, 3, *calibration.shape[2:]]
    metadata.update({
        "source": {**SOURCE, "member": WHEEL_MEMBERS[kind]},
        "weights": WEIGHTS,
        "input": {"name": "x", "shape": shape, "layout": "NCHW", "preprocess": preprocess},
        "input_shape": {"x": shape},  # the model's input is dynamic: convert with --input-shape x:1,3,H,W
        "task": task,
        "fp32_figures": FP32_FIGURES[metadata["name"]],
    })
    write_metadata(folder, metadata, GENERATOR)
    return folder


def build_det(folder: Path, eval_scenes: int = 16, calibration_scenes: int = 24) -> Path:
    height, width = DET_SIZE

    def scenes(rng, count, photos):
        images, labels = [], []
        for index in range(count):
            image, items = text_render.render_scene(rng, width, height, photos=photos)
            images.append(det_input(image))
            labels += [[index, *item.line_box(width, height), 0] for item in items]
        return np.stack(images), np.asarray(labels, np.float32).reshape(-1, 6)

    eval_x, eval_labels = scenes(_rng("det-eval"), eval_scenes, text_render.TEXT_FREE_PHOTOS)
    # calibration may use every photo: it needs realistic activations, not labels
    calibration, _ = scenes(_rng("det-calib"), calibration_scenes, text_render.PHOTOS)
    return _write_example(folder, "det", calibration, {"x": eval_x, "labels": eval_labels},
                          {"name": "detect", "decoder": "db", **DB_SETTINGS}, DET_PREPROCESS, {
        "name": "ppocr-det",
        "description": "PaddleOCR PP-OCRv4 text detector (DBNet, PP-LCNet backbone; ch_PP-OCRv4_det_infer.onnx, pretrained, "
                       "Apache-2.0) from the rapidocr-onnxruntime 1.4.4 wheel (sha256 " + WHEEL_SHA256 + "). Input BGR NCHW "
                       "normalized with ImageNet mean/std; output a text probability map [N,1,H,W] for a DB post-process.",
        "labels": ["text"],
        "output": {"name": "sigmoid_0.tmp_0", "shape": [1, 1, height, width]},
        "eval": {"samples": eval_scenes, "boxes": len(eval_labels),
                 "from": f"{width}x{height} scenes rendered here: 3-6 lines each (DejaVu Sans, font size 18-44, 15% upside down) "
                         "on sign plates or bare, over plain paper (a third) or scikit-image photos without text of their own: "
                         + ", ".join(text_render.TEXT_FREE_PHOTOS),
                 "labels": "float32 [M,6] rows (sample, x1, y1, x2, y2, class 0) in input pixels: one axis-aligned box per line, "
                           f"the ink's box grown by {text_render.LINE_BOX_PAD} of its height on each side"},
        "calibration": {"samples": calibration_scenes, "from": "other rendered scenes, over any of: " + ", ".join(text_render.PHOTOS)},
    })


def _crops(rng: np.random.Generator, count: int, width: int, upside_down_every: int = 0, fit: bool = False):
    """count line crops as model inputs, their texts and orientations (every n-th upside down)."""
    inputs: list[np.ndarray] = []
    texts: list[str] = []
    orientations: list[int] = []
    while len(inputs) < count:
        upside_down = bool(upside_down_every) and len(inputs) % upside_down_every == upside_down_every - 1
        crop, item = text_render.render_line_crop(rng, upside_down=upside_down)
        if fit and not _fits(crop, width):
            continue  # the recognizer would see it squeezed; draw another line
        inputs.append(line_input(crop, width))
        texts.append(item.text)
        orientations.append(int(upside_down))
    return np.stack(inputs), texts, np.asarray(orientations, np.int64)


CROPS_FROM = ("lines rendered here (DejaVu Sans, font size 22-40) on sign plates, paper or scikit-image photos, cut with an "
              "uneven margin of 0.1-0.45 of the text height as a detector's box would be, resized PaddleOCR-style to height 48 "
              "and padded on the right with zeros")


def build_cls(folder: Path, eval_crops: int = 64, calibration_crops: int = 32) -> Path:
    eval_x, _, eval_labels = _crops(_rng("cls-eval"), eval_crops, CLS_WIDTH, upside_down_every=2)
    calibration, _, _ = _crops(_rng("cls-calib"), calibration_crops, CLS_WIDTH, upside_down_every=2)
    return _write_example(folder, "cls", calibration, {"x": eval_x, "labels": eval_labels},
                          {"name": "classify"}, LINE_PREPROCESS, {
        "name": "ppocr-cls",
        "description": "PaddleOCR text orientation classifier (0 or 180 degrees; ch_ppocr_mobile_v2.0_cls_infer.onnx, pretrained, "
                       "Apache-2.0) from the rapidocr-onnxruntime 1.4.4 wheel (sha256 " + WHEEL_SHA256 + "). Input BGR NCHW "
                       "(x/255-0.5)/0.5 at 48x192; output softmax [N,2] over labels.txt.",
        "labels": ["0", "180"],
        "output": {"name": "save_infer_model/scale_0.tmp_1", "shape": [1, 2]},
        "eval": {"samples": eval_crops, "from": CROPS_FROM + "; every second crop turned by 180 degrees",
                 "labels": "int64 [N]: 0 for upright, 1 for upside down"},
        "calibration": {"samples": calibration_crops, "from": "other crops made the same way"},
    })


def build_rec(folder: Path, eval_crops: int = 64, calibration_crops: int = 32) -> Path:
    eval_x, eval_texts, _ = _crops(_rng("rec-eval"), eval_crops, REC_WIDTH, fit=True)
    calibration, _, _ = _crops(_rng("rec-calib"), calibration_crops, REC_WIDTH, fit=True)
    folder_path = _write_example(folder, "rec", calibration, {"x": eval_x, "labels": np.asarray(eval_texts, dtype=str)},
                                 {"name": "ocr-rec"}, LINE_PREPROCESS, {
        "name": "ppocr-rec",
        "description": "PaddleOCR PP-OCRv4 text recognizer (SVTR-LCNet, CTC head, 6625 classes: Chinese, Latin letters, digits, "
                       "punctuation; ch_PP-OCRv4_rec_infer.onnx, pretrained, Apache-2.0) from the rapidocr-onnxruntime 1.4.4 wheel "
                       "(sha256 " + WHEEL_SHA256 + "). Input BGR NCHW (x/255-0.5)/0.5 at 48x320; output per-step softmax [N,40,6625] "
                       "over labels.json for a greedy CTC decode.",
        "output": {"name": "softmax_11.tmp_0", "shape": [1, REC_WIDTH // 8, 6625]},
        "eval": {"samples": eval_crops, "from": CROPS_FROM + "; only lines that fit 320 pixels unsqueezed",
                 "labels": "unicode [N]: the rendered text"},
        "calibration": {"samples": calibration_crops, "from": "other crops made the same way"},
    })
    classes = rec_classes(folder_path / "model.onnx")
    (folder_path / "labels.json").write_text(json.dumps(classes, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder_path


# Examples made by another version of this file or of the renderer are made again.
GENERATOR = hashlib.sha256((GeneratorVersion(__file__) + GeneratorVersion(text_render.__file__)).encode()).hexdigest()[:16]
BUILDERS = {"ppocr-det": build_det, "ppocr-cls": build_cls, "ppocr-rec": build_rec}
