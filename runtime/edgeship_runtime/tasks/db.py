"""DBNet text maps (PaddleOCR's text detector) -> rotated text boxes, after PaddleOCR's DBPostProcess:
binarize at `thresh`, find contours, fit each a minimum-area rectangle, score it by the mean
probability inside, drop small or faint ones, grow ("unclip") it, and fit the rectangle again.
Only the default "fast" box score and quadrilateral output are implemented: that is what PP-OCR
ships its detectors with.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.tasks._optional import cv2 as _cv2
from edgeship_runtime.tasks.geometry import empty_detections


def _ordered_quad(cv2, rect) -> tuple[np.ndarray, float]:
    """The rectangle's corners as top-left, top-right, bottom-right, bottom-left (PaddleOCR's
    get_mini_boxes order), and its shorter side."""
    points = sorted(cv2.boxPoints(rect).tolist(), key=lambda point: point[0])
    left = sorted(points[:2], key=lambda point: point[1])
    right = sorted(points[2:], key=lambda point: point[1])
    return np.array([left[0], right[0], right[1], left[1]], np.float64), float(min(rect[1]))


def _mean_inside(cv2, probability: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the quad, over its bounding window (PaddleOCR's box_score_fast)."""
    height, width = probability.shape
    x_min, y_min = np.clip(np.floor(quad.min(axis=0)), 0, [width - 1, height - 1]).astype(int)
    x_max, y_max = np.clip(np.ceil(quad.max(axis=0)), 0, [width - 1, height - 1]).astype(int)
    mask = np.zeros((y_max - y_min + 1, x_max - x_min + 1), np.uint8)
    cv2.fillPoly(mask, [(quad - [x_min, y_min]).astype(np.int32)], 1)
    window = np.ascontiguousarray(probability[y_min:y_max + 1, x_min:x_max + 1], np.float32)
    return float(cv2.mean(window, mask)[0])


def unclip(rect, ratio: float):
    """The rectangle grown by d = area * ratio / perimeter on every side.

    PaddleOCR offsets the polygon with pyclipper (round joins) by that distance. For a rectangle the
    offset polygon is the rectangle widened and heightened by 2d with rounded corners, and the
    minimum-area rectangle fitted next drops the rounding, so growing the sides directly gives the same
    box without pyclipper (which would be one more compiled dependency on every board)."""
    (centre_x, centre_y), (width, height), angle = rect
    perimeter = 2 * (width + height)
    grow = 2 * width * height * ratio / perimeter if perimeter else 0.0
    return (centre_x, centre_y), (width + grow, height + grow), angle


def decode_db(probability: np.ndarray, record: dict) -> dict:
    """One image's text probability map [H, W] -> detections in map pixels (the model input's, for
    PP-OCR detectors), each with its rotated quad; class 0 ("text")."""
    cv2 = _cv2("the db text detector's post-processing")
    probability = np.asarray(probability, np.float32)
    height, width = probability.shape
    bitmap = (probability > record["thresh"]).astype(np.uint8) * 255
    contours = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]  # OpenCV 3 returns 3 values, 4.x two
    quads: list[np.ndarray] = []
    scores: list[float] = []
    for contour in contours[:record["max_candidates"]]:
        rect = cv2.minAreaRect(contour)
        quad, short_side = _ordered_quad(cv2, rect)
        if short_side < record["min_size"]:
            continue
        score = _mean_inside(cv2, probability, quad)
        if score < record["box_thresh"]:
            continue
        quad, short_side = _ordered_quad(cv2, unclip(rect, record["unclip_ratio"]))
        if short_side < record["min_size"] + 2:
            continue
        quads.append(np.clip(np.round(quad), 0, [width, height]))
        scores.append(score)
    if not quads:
        return {**empty_detections(), "quads": np.zeros((0, 4, 2))}
    order = np.argsort(-np.asarray(scores), kind="stable")
    ordered = np.asarray(quads)[order]
    boxes = np.concatenate([ordered.min(axis=1), ordered.max(axis=1)], axis=1)
    return {"boxes": boxes, "scores": np.asarray(scores)[order], "classes": np.zeros(len(ordered), np.int64), "quads": ordered}
