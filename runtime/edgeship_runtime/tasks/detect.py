"""Detector heads -> boxes in model-input pixels: YOLOv8/YOLO11, YOLOv5, SSD (and DBNet in `db`).

Every decoder returns, per image, {"boxes": [K, 4] x1 y1 x2 y2, "scores": [K], "classes": [K] int,
"quads": [K, 4, 2] or None}, best score first.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import UnsafePath, confined
from edgeship_runtime.tasks._optional import cv2 as _cv2


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


def decode(record: dict, outputs: dict[str, np.ndarray], artifact_dir: Path | None = None) -> list[dict]:
    """Detections of every image in a batch of outputs, for a validated detect record."""
    decoder, value = record["decoder"], np.asarray(outputs[record["output"]])
    if decoder == "db":
        from edgeship_runtime.tasks.db import decode_db

        return [decode_db(value[i, 0], record) for i in range(len(value))]
    if decoder == "yolov8":
        return [decode_yolov8(value[i], record) for i in range(len(value))]
    if decoder == "yolov5":
        return [decode_yolov5(value[i], record) for i in range(len(value))]
    anchors, scores = load_anchors(record, artifact_dir), np.asarray(outputs[record["scores_output"]])
    return [decode_ssd(value[i], scores[i], anchors, record) for i in range(len(value))]
