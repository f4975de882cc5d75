"""Detector heads -> boxes in model-input pixels: YOLOv8/YOLO11, YOLOv5, SSD (and DBNet in `db`), and
`DECODERS`, the detect task's sub-registry: per decoder its parameters, its check against the output
shapes and its decoding.

Every decoder returns, per image, {"boxes": [K, 4] x1 y1 x2 y2, "scores": [K], "classes": [K] int,
"quads": [K, 4, 2] or None}, best score first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import UnsafePath, confined
from edgeship_runtime.tasks._optional import cv2 as _cv2
from edgeship_runtime.tasks.base import REQUIRED, dims, shape_text
from edgeship_runtime.tasks.geometry import guess_layout


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, classes: np.ndarray | None = None, max_det: int | None = None) -> np.ndarray:
    """Indices of the boxes non-maximum suppression keeps, best score first. With `classes`, boxes of
    different classes never suppress each other (OpenCV's NMSBoxesBatched; on an OpenCV without it, the
    usual trick: shift each class's boxes far apart)."""
    cv2 = _cv2("non-maximum suppression")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, np.int64)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if classes is not None and not hasattr(cv2.dnn, "NMSBoxesBatched"):
        boxes = boxes + (np.asarray(classes).reshape(-1, 1) * (boxes.max() + 1.0))
        classes = None
    # OpenCV takes x, y, w, h; float rectangles, so IoU has no "+1 pixel" terms. Callers have filtered the
    # scores (strictly above their `conf` >= 0); OpenCV keeps scores > 0 here, which lets all of them through.
    rects = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes]
    if classes is None:
        kept = cv2.dnn.NMSBoxes(rects, scores.tolist(), 0.0, float(iou))
    else:
        kept = cv2.dnn.NMSBoxesBatched(rects, scores.tolist(), [int(c) for c in np.asarray(classes).reshape(-1)], 0.0, float(iou))
    kept = np.asarray(kept, np.int64).reshape(-1)
    kept = kept[np.argsort(-scores[kept], kind="stable")]
    return kept[:max_det] if max_det else kept


def _xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    centre, half = boxes[:, :2], boxes[:, 2:4] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _select(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, record: dict) -> dict:
    keep = scores > record["conf"]
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    kept = nms(boxes, scores, record["iou"], classes, record["max_det"])
    return {"boxes": boxes[kept], "scores": scores[kept], "classes": classes[kept].astype(np.int64), "quads": None}


def decode_yolov8(head: np.ndarray, record: dict) -> dict:
    """One image's YOLOv8/YOLO11 head [4 + C, N]: cx, cy, w, h in input pixels, then C sigmoid class
    scores (no objectness). Each candidate's best class and score, like Ultralytics' single-label NMS."""
    rows = np.asarray(head, np.float64).T
    class_scores = rows[:, 4:]
    classes = class_scores.argmax(axis=1)
    return _select(_xywh_to_xyxy(rows[:, :4]), class_scores[np.arange(len(rows)), classes], classes, record)


def decode_yolov5(head: np.ndarray, record: dict) -> dict:
    """One image's YOLOv5 head [N, 5 + C]: cx, cy, w, h, objectness, C class scores; score = obj * cls.
    Like Ultralytics, a candidate also needs its objectness above `conf`."""
    rows = np.asarray(head, np.float64)
    rows = rows[rows[:, 4] > record["conf"]]
    class_scores = rows[:, 5:] * rows[:, 4:5]
    classes = class_scores.argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
    return _select(_xywh_to_xyxy(rows[:, :4]), class_scores[np.arange(len(rows)), classes], classes, record)


@lru_cache(maxsize=8)
def _anchors(path: str, modified: float) -> np.ndarray:
    del modified  # part of the cache key only: a replaced file is read again
    try:
        anchors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ArtifactError(f"{path}: cannot read the ssd anchors ({error}); it must be an .npy array [N, 4]") from None
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise ArtifactError(f"{path}: ssd anchors have shape {list(anchors.shape)}; they must be [N, 4] (ycenter, xcenter, h, w; normalized)")
    return anchors.astype(np.float64)


def load_anchors(record: dict, artifact_dir: Path | None) -> np.ndarray:
    """The anchors file the record names, inside the artifact folder and reached through no link
    (the manifest lists it with its sha256, checked when the artifact opened)."""
    folder = Path(artifact_dir or ".")
    if not (folder / str(record["anchors"])).exists():
        raise ArtifactError(f"{folder / str(record['anchors'])}: the ssd anchors file named by the task record is missing; "
                            "put it in the artifact folder")
    try:
        path = confined(folder, record["anchors"], "ssd anchors")
    except UnsafePath as error:
        raise ArtifactError(f"{error}; name a file inside the artifact folder") from None
    return _anchors(str(path.resolve()), path.stat().st_mtime)


def decode_ssd(encoded: np.ndarray, scores: np.ndarray, anchors: np.ndarray, record: dict) -> dict:
    """One image's SSD outputs: box offsets [N, 4] (ty, tx, th, tw) against `anchors` [N, 4] (ycenter,
    xcenter, h, w), as TF Object Detection API's box coder and MediaPipe write them:
        ycenter = ty / scale_y * h_a + ycenter_a        h = exp(th / scale_h) * h_a
    and class scores [N, C] (sigmoid or softmax; with a background column 0 when "background")."""
    encoded, scores = np.asarray(encoded, np.float64), np.asarray(scores, np.float64)
    if len(anchors) != len(encoded):
        raise ArtifactError(f"ssd: {len(anchors)} anchors for {len(encoded)} boxes; the anchors file must have one row per box")
    scale_y, scale_x, scale_h, scale_w = record["scales"]
    centre_y = encoded[:, 0] / scale_y * anchors[:, 2] + anchors[:, 0]
    centre_x = encoded[:, 1] / scale_x * anchors[:, 3] + anchors[:, 1]
    height, width = np.exp(encoded[:, 2] / scale_h) * anchors[:, 2], np.exp(encoded[:, 3] / scale_w) * anchors[:, 3]
    input_h, input_w = record["input_size"]
    boxes = np.stack([(centre_x - width / 2) * input_w, (centre_y - height / 2) * input_h,
                      (centre_x + width / 2) * input_w, (centre_y + height / 2) * input_h], axis=1)
    if record["score"] == "softmax":
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    else:
        probabilities = 0.5 * (1 + np.tanh(scores / 2))  # the logistic function, without exp overflow for large logits
    if record["background"]:
        probabilities = probabilities[:, 1:]  # class 0 is the background: class ids count the real classes
    classes = probabilities.argmax(axis=1)
    return _select(boxes, probabilities[np.arange(len(boxes)), classes], classes, record)


def _image_size(inputs: list[dict] | None) -> list[int] | None:
    if not inputs:
        return None
    shape = dims(inputs[0]["shape"])
    layout = guess_layout(shape)
    size = (shape[2:4] if layout == "NCHW" else shape[1:3]) if layout else [None]
    return None if None in size else [int(side) for side in size if side is not None]


def _what(record: dict, shapes: dict, where: str) -> str:
    return f"{where}: task {record['decoder']!r} reads output {record['output']!r} of shape {shape_text(shapes[record['output']])}"


def _check_db(record: dict, shapes: dict, where: str, inputs) -> None:
    shape = shapes[record["output"]]
    if len(shape) != 4 or shape[1] not in (1, None):
        raise ArtifactError(f"{_what(record, shapes, where)}; db needs a probability map [N, 1, H, W]")


def _check_yolo(record: dict, shapes: dict, where: str, inputs) -> None:
    shape, what = shapes[record["output"]], _what(record, shapes, where)
    layout, axis, fixed = {"yolov8": ("[1, 4 + C, N]", 1, 4), "yolov5": ("[1, N, 5 + C]", 2, 5)}[record["decoder"]]
    if len(shape) != 3 or (shape[axis] is not None and shape[axis] <= fixed):
        raise ArtifactError(f"{what}; {record['decoder']} needs {layout}")
    classes = record["classes"]
    if classes is not None and shape[axis] is not None and len(classes) != shape[axis] - fixed:
        raise ArtifactError(f"{what}: {shape[axis] - fixed} classes, but \"classes\" names {len(classes)}")


def _check_ssd(record: dict, shapes: dict, where: str, inputs) -> None:
    what = _what(record, shapes, where)
    others = [n for n in shapes if n != record["output"]]
    if record["scores_output"] is None:
        if not others:
            raise ArtifactError(f"{where}: ssd needs two outputs (boxes [1, N, 4] and scores [1, N, C]); the model has one")
        record["scores_output"] = others[0]
    if record["scores_output"] not in others:
        raise ArtifactError(f"{where}: ssd scores_output {record['scores_output']!r} is not another output of the model; "
                            f"the outputs are {list(shapes)}")
    boxes, scores = shapes[record["output"]], shapes[record["scores_output"]]
    if len(boxes) != 3 or boxes[2] not in (4, None):
        raise ArtifactError(f"{what}; ssd needs box offsets [1, N, 4] there (\"output\") and the scores in \"scores_output\"")
    if len(scores) != 3 or (None not in (boxes[1], scores[1]) and boxes[1] != scores[1]):
        raise ArtifactError(f"{where}: ssd scores {record['scores_output']!r} {scores} do not fit boxes {record['output']!r} {boxes}; "
                            "the scores need [1, N, C] with the same N")
    if record["background"] is None:
        record["background"] = record["score"] == "softmax"  # softmax heads carry a background column 0
    if record["input_size"] is None:
        record["input_size"] = _image_size(inputs)
        if record["input_size"] is None:
            raise ArtifactError(f"{where}: ssd needs \"input_size\": [height, width] of the model input (its boxes are normalized)")


def _decode_db(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
    from edgeship_runtime.tasks.db import decode_db

    value = np.asarray(outputs[record["output"]])
    return [decode_db(value[i, 0], record) for i in range(len(value))]


def _decode_head(decoder: Callable[[np.ndarray, dict], dict]) -> Callable[[dict, dict, Path | None], list[dict]]:
    def decode_batch(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
        value = np.asarray(outputs[record["output"]])
        return [decoder(value[i], record) for i in range(len(value))]
    return decode_batch


def _decode_ssd(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
    value, scores = np.asarray(outputs[record["output"]]), np.asarray(outputs[record["scores_output"]])
    anchors = load_anchors(record, artifact_dir)
    return [decode_ssd(value[i], scores[i], anchors, record) for i in range(len(value))]


class Decoder(NamedTuple):
    params: dict[str, tuple]  # parameter -> (default or REQUIRED, kind), as Task.params
    check: Callable[[dict, dict, str, list[dict] | None], None]  # (record, output shapes, where, inputs): ArtifactError or None
    decode: Callable[[dict, dict, Path | None], list[dict]]  # (record, outputs of a batch, artifact folder) -> per image
    labelled: Callable[[int], str] | None = None  # the label of a class id, when the decoder fixes it (db: "text")


_YOLO = {"conf": (0.25, "fraction"), "iou": (0.45, "fraction"), "max_det": (300, "count"), "classes": (None, "names")}
DECODERS: dict[str, Decoder] = {
    "db": Decoder({"thresh": (0.3, "fraction"), "box_thresh": (0.6, "fraction"), "unclip_ratio": (1.5, "positive"),
                   "max_candidates": (1000, "count"), "min_size": (3.0, "positive")}, _check_db, _decode_db, lambda i: "text"),
    "yolov8": Decoder(_YOLO, _check_yolo, _decode_head(decode_yolov8)),
    "yolov5": Decoder(_YOLO, _check_yolo, _decode_head(decode_yolov5)),
    # scores_output: the scores tensor (default: the other output); anchors: an .npy [N, 4] (ycenter, xcenter,
    # h, w; normalized) beside the artifact; input_size: [h, w] of the model input, read off its shape when given.
    "ssd": Decoder({**_YOLO, "scores_output": (None, "text"), "anchors": (REQUIRED, "text"), "scales": ([10.0, 10.0, 5.0, 5.0], "scales"),
                    "score": ("sigmoid", ("sigmoid", "softmax")), "background": (None, "bool"), "input_size": (None, "size")},
                   _check_ssd, _decode_ssd),
}


def decode(record: dict, outputs: dict[str, np.ndarray], artifact_dir: Path | None = None) -> list[dict]:
    """Detections of every image in a batch of outputs, for a validated detect record."""
    return DECODERS[record["decoder"]].decode(record, outputs, artifact_dir)
