"""Detector heads -> boxes in model-input pixels: YOLOv8/YOLO11 (whole, or cut before the DFL: yolov8_dfl), YOLOv5, SSD (and DBNet in `db`), and
`DECODERS`, the detect task's sub-registry: per decoder its parameters, its check against the output
shapes and its decoding.

Every decoder returns, per image, {"boxes": [K, 4] x1 y1 x2 y2, "scores": [K], "classes": [K] int,
"quads": [K, 4, 2] or None}, best score first; ssd adds "landmarks" [K, P, 2] x y, its keypoints (P may be 0).
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
from edgeship_runtime.tasks.anchors import ANCHOR_OPTIONS, anchors_from, weighted_nms
from edgeship_runtime.tasks.base import REQUIRED, image_size, shape_text


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



def decode_yolov8_dfl(levels: list[tuple[np.ndarray, np.ndarray]], record: dict) -> dict:
    """One image's YOLOv8/YOLO11 head cut before its DFL (targets/yolo_head.py, as Rockchip's rknn_model_zoo
    exports it): per level the box logits [4 * B, H, W] (left, top, right, bottom, each a distribution over
    B distances in cells) and the sigmoid class scores [C, H, W], the stride being input_size / H. As the
    in-graph head: the expected distance under each side's softmax, from the cell's centre, times the stride.
    The DFL runs only on the cells whose best score passes `conf`."""
    input_h, input_w = record["input_size"]
    boxes, scores, classes = [], [], []
    for logits, class_scores in levels:
        count, height, width = class_scores.shape
        flat = np.asarray(class_scores, np.float64).reshape(count, height * width)
        best = flat.argmax(axis=0)
        best_scores = flat[best, np.arange(height * width)]
        cells = np.flatnonzero(best_scores > record["conf"])
        bins = logits.shape[0] // 4
        side = np.asarray(logits, np.float64).reshape(4, bins, height * width)[:, :, cells]
        weights = np.exp(side - side.max(axis=1, keepdims=True))
        distances = (weights * np.arange(bins).reshape(1, bins, 1)).sum(axis=1) / weights.sum(axis=1)  # [4, K] in cells
        stride_y, stride_x = input_h / height, input_w / width
        centre_x, centre_y = cells % width + 0.5, cells // width + 0.5
        boxes.append(np.stack([(centre_x - distances[0]) * stride_x, (centre_y - distances[1]) * stride_y,
                               (centre_x + distances[2]) * stride_x, (centre_y + distances[3]) * stride_y], axis=1))
        scores.append(best_scores[cells])
        classes.append(best[cells])
    return _select(np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes), record)

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
    """One image's SSD outputs, as MediaPipe's TensorsToDetectionsCalculator reads them: per anchor a
    row of `num_coords` values (default 4), the box at `box_coord_offset` as (ty, tx, th, tw), or
    (tx, ty, tw, th) with reverse_output_order, then `num_keypoints` (x, y) pairs (y, x without it) at
    `keypoint_coord_offset`; against `anchors` [N, 4] (ycenter, xcenter, h, w; normalized):
        ycenter = ty / scale_y * h_a + ycenter_a     h = exp(th / scale_h) * h_a   (apply_exponential_on_box_size,
                                                     h = th / scale_h * h_a         as TF Object Detection API's box coder)
    and the keypoints as the centre. Scores [N, C]: sigmoid (logits clipped to +-score_clipping_thresh
    first, when given), softmax (with a background column 0 when "background") or raw. Boxes with a
    negative or NaN size are dropped (MediaPipe drops them too), then plain or weighted NMS."""
    encoded, scores = np.asarray(encoded, np.float64), np.asarray(scores, np.float64)
    if len(anchors) != len(encoded):
        raise ArtifactError(f"ssd: {len(anchors)} anchors for {len(encoded)} boxes; the anchors must have one row per box")
    box = encoded[:, record["box_coord_offset"]:record["box_coord_offset"] + 4]
    order = [1, 0, 3, 2] if record["reverse_output_order"] else [0, 1, 2, 3]  # -> ty, tx, th, tw
    ty, tx, th, tw = (box[:, i] for i in order)
    scale_y, scale_x, scale_h, scale_w = record["scales"]
    centre_y, centre_x = ty / scale_y * anchors[:, 2] + anchors[:, 0], tx / scale_x * anchors[:, 3] + anchors[:, 1]
    if record["apply_exponential_on_box_size"]:
        height, width = np.exp(th / scale_h) * anchors[:, 2], np.exp(tw / scale_w) * anchors[:, 3]
    else:
        height, width = th / scale_h * anchors[:, 2], tw / scale_w * anchors[:, 3]
    input_h, input_w = record["input_size"]
    boxes = np.stack([(centre_x - width / 2) * input_w, (centre_y - height / 2) * input_h,
                      (centre_x + width / 2) * input_w, (centre_y + height / 2) * input_h], axis=1)
    first, count = record["keypoint_coord_offset"], record["num_keypoints"]
    raw_points = encoded[:, first:first + 2 * count].reshape(len(encoded), count, 2)
    points_x, points_y = (raw_points[..., 0], raw_points[..., 1]) if record["reverse_output_order"] else (raw_points[..., 1], raw_points[..., 0])
    keypoints = np.stack([(points_x / scale_x * anchors[:, 3:4] + anchors[:, 1:2]) * input_w,
                          (points_y / scale_y * anchors[:, 2:3] + anchors[:, 0:1]) * input_h], axis=2)
    if record["score"] == "softmax":
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    elif record["score"] == "sigmoid":
        if record["score_clipping_thresh"] is not None:
            scores = np.clip(scores, -record["score_clipping_thresh"], record["score_clipping_thresh"])
        probabilities = 0.5 * (1 + np.tanh(scores / 2))  # the logistic function, without exp overflow for large logits
    else:
        probabilities = scores
    if record["background"]:
        probabilities = probabilities[:, 1:]  # class 0 is the background: class ids count the real classes
    classes = probabilities.argmax(axis=1)
    best = probabilities[np.arange(len(boxes)), classes]
    # MediaPipe keeps a score >= min_score_thresh; `conf` (the other decoders' threshold) keeps a score above it
    passed = best >= record["min_score_thresh"] if record["min_score_thresh"] is not None else best > record["conf"]
    keep = passed & (width >= 0) & (height >= 0) & ~np.isnan(width) & ~np.isnan(height)
    boxes, best, classes, keypoints = boxes[keep], best[keep], classes[keep], keypoints[keep]
    if record["nms"] == "weighted":
        # per class, as MediaPipe runs one NMS over one class's detections (BlazeFace has one class)
        found = [(c, *weighted_nms(boxes[classes == c], best[classes == c], keypoints[classes == c], record["iou"], record["max_det"]))
                 for c in np.unique(classes)]
        boxes = np.concatenate([f[1] for f in found] + [np.zeros((0, 4))])
        best = np.concatenate([f[2] for f in found] + [np.zeros(0)])
        keypoints = np.concatenate([f[3] for f in found] + [np.zeros((0, count, 2))])
        classes = np.concatenate([np.full(len(f[2]), f[0]) for f in found] + [np.zeros(0, np.int64)])
        kept = np.argsort(-best, kind="stable")[:record["max_det"]]
    else:
        kept = nms(boxes, best, record["iou"], classes, record["max_det"])
    return {"boxes": boxes[kept], "scores": best[kept], "classes": classes[kept].astype(np.int64), "quads": None,
            "landmarks": keypoints[kept]}


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


def _check_yolo_dfl(record: dict, shapes: dict, where: str, inputs) -> None:
    boxes, scores = record["box_outputs"], record["score_outputs"]
    layout = "per level boxes [1, 4 * B, H, W] in \"box_outputs\" and sigmoid scores [1, C, H, W] in \"score_outputs\""
    if not boxes or len(boxes) != len(scores):
        raise ArtifactError(f"{where}: yolov8_dfl has {len(boxes)} box and {len(scores)} score outputs; it needs {layout}, one of each per level")
    unknown = [name for name in (*boxes, *scores) if name not in shapes]
    if unknown:
        raise ArtifactError(f"{where}: yolov8_dfl outputs {unknown} are not outputs of the model; the outputs are {list(shapes)}")
    if record["input_size"] is None:
        record["input_size"] = image_size(inputs)
        if record["input_size"] is None:
            raise ArtifactError(f"{where}: yolov8_dfl needs \"input_size\": [height, width] of the model input (its strides are input / grid)")
    class_counts = set()
    for box, score in zip(boxes, scores):
        box_shape, score_shape = shapes[box], shapes[score]
        fits = (len(box_shape) == len(score_shape) == 4 and None not in box_shape[1:] + score_shape[1:]
                and box_shape[1] % 4 == 0 and box_shape[1] >= 8 and box_shape[2:] == score_shape[2:])
        if not fits:
            raise ArtifactError(f"{where}: yolov8_dfl level {box!r} {shape_text(box_shape)} / {score!r} {shape_text(score_shape)} "
                                f"do not fit; it needs {layout} with the same H, W")
        if any(size % side for size, side in zip(record["input_size"], box_shape[2:])):
            raise ArtifactError(f"{where}: yolov8_dfl level {box!r} grid {box_shape[2:]} does not divide the input size "
                                f"{record['input_size']}; give \"input_size\" as the model input's [height, width]")
        class_counts.add(score_shape[1])
    if len(class_counts) != 1:
        raise ArtifactError(f"{where}: yolov8_dfl score outputs have {sorted(class_counts)} classes; every level needs the same")
    classes = record["classes"]
    if classes is not None and len(classes) not in class_counts:
        raise ArtifactError(f"{where}: yolov8_dfl scores have {class_counts.pop()} classes, but \"classes\" names {len(classes)}")

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
    coords = record["num_coords"] or 4
    boxes, scores = shapes[record["output"]], shapes[record["scores_output"]]
    if len(boxes) != 3 or boxes[2] not in (coords, None):
        raise ArtifactError(f"{what}; ssd needs box offsets [1, N, {coords}] there (\"output\"; num_coords={coords}) "
                            "and the scores in \"scores_output\"")
    if len(scores) != 3 or (None not in (boxes[1], scores[1]) and boxes[1] != scores[1]):
        raise ArtifactError(f"{where}: ssd scores {record['scores_output']!r} {scores} do not fit boxes {record['output']!r} {boxes}; "
                            "the scores need [1, N, C] with the same N")
    _check_layout(record, coords, where)
    if record["sigmoid_score"] is not None:  # MediaPipe's name for the score function
        record["score"] = "sigmoid" if record["sigmoid_score"] else "raw"
    if record["background"] is None:
        record["background"] = record["score"] == "softmax"  # softmax heads carry a background column 0
    if record["input_size"] is None:
        record["input_size"] = image_size(inputs)
        if record["input_size"] is None:
            raise ArtifactError(f"{where}: ssd needs \"input_size\": [height, width] of the model input (its boxes are normalized)")
    named_scales = [record[key] for key in ("y_scale", "x_scale", "h_scale", "w_scale")]
    if any(value is not None for value in named_scales):
        if None in named_scales:
            raise ArtifactError(f"{where}: ssd takes x_scale, y_scale, w_scale and h_scale together (MediaPipe's box scales); "
                                "give all four, or \"scales\": [y, x, h, w]")
        record["scales"] = named_scales
    generated = record["strides"] is not None
    if record["anchors"] is not None and generated:
        raise ArtifactError(f"{where}: ssd takes its anchors from an \"anchors\" file or from anchor options (strides, ...), not both")
    if record["anchors"] is None and not generated:
        raise ArtifactError(f"{where}: ssd needs the parameter 'anchors' (an .npy [N, 4] beside the artifact) or MediaPipe's anchor "
                            "options (num_layers, strides, min_scale, max_scale, ...)")
    if record["apply_exponential_on_box_size"] is None:
        # an anchors file comes from TF Object Detection API's box coder (exp); MediaPipe's default is linear
        record["apply_exponential_on_box_size"] = not generated
    if generated:
        record["input_size_height"] = record["input_size_height"] or record["input_size"][0]
        record["input_size_width"] = record["input_size_width"] or record["input_size"][1]
        count = len(anchors_from(record, where))
        if boxes[1] is not None and boxes[1] != count:
            raise ArtifactError(f"{what}: its anchor options generate {count} anchors for {boxes[1]} boxes; "
                                "check num_layers, strides, aspect_ratios and the input size against the model's")


def _check_layout(record: dict, coords: int, where: str) -> None:
    """The box and keypoints must lie inside a row of num_coords values."""
    for key in ("box_coord_offset", "keypoint_coord_offset", "num_keypoints"):
        if record[key] != int(record[key]) or record[key] < 0:
            raise ArtifactError(f"{where}: task parameter {key}={record[key]!r} must be a whole number of at least 0")
        record[key] = int(record[key])
    if record["box_coord_offset"] + 4 > coords:
        raise ArtifactError(f"{where}: box_coord_offset={record['box_coord_offset']} leaves no room for 4 box values in "
                            f"num_coords={coords}")
    if record["num_keypoints"] and record["keypoint_coord_offset"] + 2 * record["num_keypoints"] > coords:
        raise ArtifactError(f"{where}: {record['num_keypoints']} keypoints (x, y) from keypoint_coord_offset="
                            f"{record['keypoint_coord_offset']} need {record['keypoint_coord_offset'] + 2 * record['num_keypoints']} "
                            f"values per box; num_coords is {coords}")


def _decode_db(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
    from edgeship_runtime.tasks.db import decode_db

    value = np.asarray(outputs[record["output"]])
    return [decode_db(value[i, 0], record) for i in range(len(value))]


def _decode_head(decoder: Callable[[np.ndarray, dict], dict]) -> Callable[[dict, dict, Path | None], list[dict]]:
    def decode_batch(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
        value = np.asarray(outputs[record["output"]])
        return [decoder(value[i], record) for i in range(len(value))]
    return decode_batch


def _decode_yolo_dfl(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
    pairs = [(np.asarray(outputs[box]), np.asarray(outputs[score])) for box, score in zip(record["box_outputs"], record["score_outputs"])]
    return [decode_yolov8_dfl([(box[i], score[i]) for box, score in pairs], record) for i in range(len(pairs[0][0]))]

def _decode_ssd(record: dict, outputs: dict, artifact_dir: Path | None) -> list[dict]:
    value, scores = np.asarray(outputs[record["output"]]), np.asarray(outputs[record["scores_output"]])
    anchors = anchors_from(record) if record["anchors"] is None else load_anchors(record, artifact_dir)
    return [decode_ssd(value[i], scores[i], anchors, record) for i in range(len(value))]


class Decoder(NamedTuple):
    params: dict[str, tuple]  # parameter -> (default or base.REQUIRED, kind), as Task.params
    check: Callable[[dict, dict, str, list[dict] | None], None]  # (record, output shapes, where, inputs): ArtifactError or None
    decode: Callable[[dict, dict, Path | None], list[dict]]  # (record, outputs of a batch, artifact folder) -> per image
    labelled: Callable[[int], str] | None = None  # the label of a class id, when the decoder fixes it (db: "text")


_YOLO = {"conf": (0.25, "fraction"), "iou": (0.45, "fraction"), "max_det": (300, "count"), "classes": (None, "names")}
# scores_output: the scores tensor (default: the other output); anchors: an .npy [N, 4] (ycenter, xcenter, h, w;
# normalized) beside the artifact, or else generated from MediaPipe's anchor options (tasks/anchors.py);
# input_size: [h, w] of the model input, read off its shape when given. The rest are MediaPipe's
# TensorsToDetectionsCalculator options under its names; "iou" is its NMS's min_suppression_threshold.
_SSD = {**_YOLO, "scores_output": (None, "text"), "anchors": (None, "text"), "scales": ([10.0, 10.0, 5.0, 5.0], "scales"),
        "score": ("sigmoid", ("sigmoid", "softmax", "raw")), "background": (None, "bool"), "input_size": (None, "size"),
        **ANCHOR_OPTIONS, "x_scale": (None, "positive"), "y_scale": (None, "positive"), "w_scale": (None, "positive"),
        "h_scale": (None, "positive"), "apply_exponential_on_box_size": (None, "bool"), "num_coords": (None, "count"),
        "box_coord_offset": (0, "number"), "keypoint_coord_offset": (4, "number"), "num_keypoints": (0, "number"),
        "reverse_output_order": (False, "bool"), "sigmoid_score": (None, "bool"), "score_clipping_thresh": (None, "positive"),
        "min_score_thresh": (None, "fraction"), "nms": ("plain", ("plain", "weighted"))}
DECODERS: dict[str, Decoder] = {
    "db": Decoder({"thresh": (0.3, "fraction"), "box_thresh": (0.6, "fraction"), "unclip_ratio": (1.5, "positive"),
                   "max_candidates": (1000, "count"), "min_size": (3.0, "positive")}, _check_db, _decode_db, lambda i: "text"),
    "yolov8": Decoder(_YOLO, _check_yolo, _decode_head(decode_yolov8)),
    "yolov5": Decoder(_YOLO, _check_yolo, _decode_head(decode_yolov5)),
    # the head cut before its DFL (targets/yolo_head.py; rk3588): box_outputs/score_outputs per level, stride 8 first
    "yolov8_dfl": Decoder({**_YOLO, "box_outputs": (REQUIRED, "names"), "score_outputs": (REQUIRED, "names"), "input_size": (None, "size")},
                          _check_yolo_dfl, _decode_yolo_dfl),
    "ssd": Decoder(_SSD, _check_ssd, _decode_ssd),
}


def decode(record: dict, outputs: dict[str, np.ndarray], artifact_dir: Path | None = None) -> list[dict]:
    """Detections of every image in a batch of outputs, for a validated detect record."""
    return DECODERS[record["decoder"]].decode(record, outputs, artifact_dir)
