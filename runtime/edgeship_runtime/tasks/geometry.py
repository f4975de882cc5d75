"""Where a frame's pixels land in the model input, and boxes back; box IoU and one-to-one matching.

Coordinates are continuous pixel edges: x runs over [0, width], a pixel i covers [i, i + 1). In
those coordinates cv2.resize is a pure scale, so one `scale` and `offset` per axis maps both ways:

    input = frame * scale + offset        frame = (input - offset) / scale
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks._optional import cv2 as _cv2

RESIZE_MODES = ("stretch", "center_crop", "letterbox")


def guess_layout(shape: list) -> str | None:
    """NCHW or NHWC from a 4-D image input shape, or None when it is not one."""
    if len(shape) != 4:
        return None
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3):
        return "NHWC"
    return None


def fit_transform(frame_hw: tuple[int, int], input_hw: tuple[int, int], mode: str) -> dict:
    """How a frame of `frame_hw` becomes a model input of `input_hw`:
    - stretch: resized to the input, aspect ratio lost;
    - center_crop: the largest centred window with the input's aspect ratio, resized (exactly as
      `Preprocess.fit` crops);
    - letterbox: resized to fit inside the input keeping the aspect ratio, then padded on both sides,
      centred (Ultralytics' default, which YOLO models are trained and exported with).
    Returns {"mode", "frame_hw", "input_hw", "scale": [sy, sx], "offset": [oy, ox]} plus "crop"
    [top, left, h, w] (center_crop) or "resized_hw" and "pad" [top, left] (letterbox)."""
    frame_h, frame_w = (int(v) for v in frame_hw)
    input_h, input_w = (int(v) for v in input_hw)
    if min(frame_h, frame_w, input_h, input_w) <= 0:
        raise ArtifactError(f"fit_transform: sizes must be positive (frame {frame_hw}, input {input_hw})")
    result = {"mode": mode, "frame_hw": [frame_h, frame_w], "input_hw": [input_h, input_w]}
    if mode == "stretch":
        result.update(scale=[input_h / frame_h, input_w / frame_w], offset=[0.0, 0.0])
    elif mode == "center_crop":
        crop_h, crop_w = frame_h, round(frame_h * input_w / input_h)
        if crop_w > frame_w:
            crop_w, crop_h = frame_w, round(frame_w * input_h / input_w)
        top, left = (frame_h - crop_h) // 2, (frame_w - crop_w) // 2
        scale = [input_h / crop_h, input_w / crop_w]
        result.update(scale=scale, offset=[-top * scale[0], -left * scale[1]], crop=[top, left, crop_h, crop_w])
    elif mode == "letterbox":
        ratio = min(input_h / frame_h, input_w / frame_w)
        resized_h, resized_w = min(input_h, max(1, round(frame_h * ratio))), min(input_w, max(1, round(frame_w * ratio)))
        top, left = (input_h - resized_h) // 2, (input_w - resized_w) // 2
        result.update(scale=[resized_h / frame_h, resized_w / frame_w], offset=[float(top), float(left)],
                      resized_hw=[resized_h, resized_w], pad=[top, left])
    else:
        raise ArtifactError(f"fit_transform: resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    return result


def _per_column(transform: dict) -> tuple[np.ndarray, np.ndarray]:
    (scale_y, scale_x), (offset_y, offset_x) = transform["scale"], transform["offset"]
    return np.array([scale_x, scale_y, scale_x, scale_y]), np.array([offset_x, offset_y, offset_x, offset_y])


def boxes_to_frame(boxes: np.ndarray, transform: dict) -> np.ndarray:
    """[K, 4] x1, y1, x2, y2 in model-input pixels -> frame pixels (clipped to the frame)."""
    scale, offset = _per_column(transform)
    frame = (np.asarray(boxes, np.float64).reshape(-1, 4) - offset) / scale
    frame_h, frame_w = transform["frame_hw"]
    return np.clip(frame, 0, [frame_w, frame_h, frame_w, frame_h])


def boxes_to_input(boxes: np.ndarray, transform: dict) -> np.ndarray:
    """[K, 4] x1, y1, x2, y2 in frame pixels -> model-input pixels (clipped to the input)."""
    scale, offset = _per_column(transform)
    mapped = np.asarray(boxes, np.float64).reshape(-1, 4) * scale + offset
    input_h, input_w = transform["input_hw"]
    return np.clip(mapped, 0, [input_w, input_h, input_w, input_h])


def letterbox(frame: np.ndarray, input_hw, pad_value=114) -> np.ndarray:
    """The frame resized to fit `input_hw` (aspect ratio kept) and padded, centred, with `pad_value`
    (114, Ultralytics' grey). Placement is `fit_transform(..., "letterbox")`'s."""
    cv2 = _cv2("letterbox")
    transform = fit_transform(frame.shape[:2], input_hw, "letterbox")
    resized_h, resized_w = transform["resized_hw"]
    shrinking = resized_h <= frame.shape[0] and resized_w <= frame.shape[1]
    resized = cv2.resize(frame, (resized_w, resized_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    canvas = np.full((int(input_hw[0]), int(input_hw[1]), *frame.shape[2:]), pad_value, dtype=frame.dtype)
    top, left = transform["pad"]
    canvas[top:top + resized_h, left:left + resized_w] = resized.reshape(resized_h, resized_w, *frame.shape[2:])
    return canvas


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU matrix [K, M] of x1, y1, x2, y2 boxes."""
    first, second = np.asarray(first, np.float64).reshape(-1, 4), np.asarray(second, np.float64).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = _area(first)[:, None] + _area(second)[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def detection_scores(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 from counts; an empty side counts as perfect only when the other is empty too."""
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn),
            "precision": tp / (tp + fp) if tp + fp else float(fn == 0),
            "recall": tp / (tp + fn) if tp + fn else float(fp == 0),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0}


def match_boxes(predicted: np.ndarray, truth: np.ndarray, iou: float = 0.5, classes_pred=None, classes_truth=None) -> dict:
    """Greedy one-to-one matching, highest IoU first; a pair counts when IoU >= `iou` (and, when classes
    are given, the classes agree). {"tp", "fp", "fn", "precision", "recall", "f1", "pairs": [(predicted, truth) index]}."""
    overlaps = box_iou(predicted, truth)
    if classes_pred is not None and classes_truth is not None:
        same_class = np.asarray(classes_pred).reshape(-1, 1) == np.asarray(classes_truth).reshape(1, -1)
        overlaps = np.where(same_class, overlaps, -1.0)
    pairs = np.argwhere(overlaps >= iou)
    order = np.argsort(-overlaps[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_pred, used_truth, matched = set(), set(), []
    for p, t in pairs[order]:
        if p not in used_pred and t not in used_truth:
            used_pred.add(p)
            used_truth.add(t)
            matched.append((int(p), int(t)))
    tp = len(used_pred)
    return {**detection_scores(tp, overlaps.shape[0] - tp, overlaps.shape[1] - tp), "pairs": matched}


def empty_detections() -> dict:
    """What a decoder returns for a frame without boxes."""
    return {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, np.int64), "quads": None}


def crop_quad(frame: np.ndarray, quad) -> np.ndarray:
    """The image under a (possibly rotated) quadrilateral, warped upright: what a text recognizer
    reads. The corners are taken clockwise from the top-left (as the DB decoder orders them); the
    crop's size is the quad's longer sides. A crop much taller than wide is turned to lie flat
    (PaddleOCR's get_rotate_crop_image does the same)."""
    cv2 = _cv2("cropping text boxes")
    corners = np.asarray(quad, np.float32).reshape(4, 2)
    width = max(1, round(max(np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[3] - corners[2]))))
    height = max(1, round(max(np.linalg.norm(corners[0] - corners[3]), np.linalg.norm(corners[1] - corners[2]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warped = cv2.warpPerspective(frame, cv2.getPerspectiveTransform(corners, target), (width, height),
                                 flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return np.rot90(warped) if height >= 1.5 * width else warped


def quads_to_frame(quads: np.ndarray, transform: dict) -> np.ndarray:
    """[K, 4, 2] corner points in model-input pixels -> frame pixels (clipped to the frame)."""
    (scale_y, scale_x), (offset_y, offset_x) = transform["scale"], transform["offset"]
    points = (np.asarray(quads, np.float64).reshape(-1, 4, 2) - [offset_x, offset_y]) / [scale_x, scale_y]
    frame_h, frame_w = transform["frame_hw"]
    return np.clip(points, 0, [frame_w, frame_h])


def points_to_frame(points: np.ndarray, transform: dict) -> np.ndarray:
    """[K, 2] x, y points in model-input pixels -> frame pixels (clipped to the frame)."""
    (scale_y, scale_x), (offset_y, offset_x) = transform["scale"], transform["offset"]
    frame = (np.asarray(points, np.float64).reshape(-1, 2) - [offset_x, offset_y]) / [scale_x, scale_y]
    frame_h, frame_w = transform["frame_hw"]
    return np.clip(frame, 0, [frame_w, frame_h])
