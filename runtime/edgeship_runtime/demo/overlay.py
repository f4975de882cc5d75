"""What the demo draws: the result over the untouched frame, and the classifier's reading of an output."""

from __future__ import annotations

import math

import numpy as np

from edgeship_runtime.demo.sources import _cv2

DISPLAY_MIN_WIDTH = 320
BANNER_LINE_PX = 22


BANNER_PX = 2 * BANNER_LINE_PX + 12


BOX_COLOUR, TEXT_COLOUR = (0, 200, 255), (0, 255, 255)  # BGR: amber boxes, yellow labels


def draw_boxes(frame: np.ndarray, boxes: list[dict], factor: float = 1.0) -> np.ndarray:
    """A copy of the frame with each box (its rotated quad when it has one) and its label or the
    text read in it; coordinates are the frame's, times `factor` when the frame was enlarged."""
    cv2 = _cv2()
    frame = frame.copy()
    for box in boxes:
        if box.get("quad"):
            points = np.round(np.asarray(box["quad"], np.float64) * factor).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(frame, [points], True, BOX_COLOUR, 2, cv2.LINE_AA)
        else:
            x1, y1, x2, y2 = (int(round(v * factor)) for v in box["box"])
            cv2.rectangle(frame, (x1, y1), (x2, y2), BOX_COLOUR, 2, cv2.LINE_AA)
        caption = box.get("text") or f"{box['label']} {box['score'] * 100:.0f}%"
        x, y = int(box["box"][0] * factor), max(14, int(box["box"][1] * factor) - 4)
        cv2.putText(frame, caption, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, caption, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT_COLOUR, 1, cv2.LINE_AA)
    return frame


POINT_COLOUR, EDGE_COLOUR = (80, 255, 80), (255, 160, 0)  # BGR: green landmarks, blue skeleton


def draw_points(frame: np.ndarray, points: list, edges: list, factor: float = 1.0) -> np.ndarray:
    """A copy of the frame with each landmark as a dot and each [i, j] edge of the skeleton as a line;
    coordinates are the frame's, times `factor` when the frame was enlarged."""
    cv2 = _cv2()
    frame = frame.copy()
    where = [(int(round(x * factor)), int(round(y * factor))) for x, y in points]
    for i, j in edges:
        if i < len(where) and j < len(where):
            cv2.line(frame, where[i], where[j], EDGE_COLOUR, 2, cv2.LINE_AA)
    for point in where:
        cv2.circle(frame, point, 3, POINT_COLOUR, -1, cv2.LINE_AA)
    return frame


def annotate(frame: np.ndarray, result: dict, fps: float, infer_ms: float, note: str = "") -> np.ndarray:
    """The frame under a dark banner: what was read (class and confidence, the boxes found or the
    text), then FPS, inference time and the backend. A classifier's frame keeps its own pixels; a
    detector's gets its boxes drawn on (small frames are enlarged first, by pixel repetition)."""
    cv2 = _cv2()
    factor = 1
    if frame.shape[1] < DISPLAY_MIN_WIDTH:
        factor = math.ceil(DISPLAY_MIN_WIDTH / frame.shape[1])
        frame = cv2.resize(frame, (frame.shape[1] * factor, frame.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    if result.get("boxes"):
        frame = draw_boxes(frame, result["boxes"], factor)
    if result.get("points"):  # landmarks (and their skeleton), whatever task found them
        frame = draw_points(frame, result["points"], result.get("edges") or [], factor)
    height = BANNER_PX
    canvas = np.empty((frame.shape[0] + height, frame.shape[1], 3), np.uint8)
    canvas[:height] = (24, 24, 24)
    canvas[height:] = frame
    width = canvas.shape[1] - 16
    if "boxes" in result:
        headline = result["label"]  # the task's summary of the boxes ("2 found, best face")
    else:
        headline = f"{result['label']}  {result['confidence'] * 100:.1f}%"
    status = f"{fps:.1f} FPS  infer {infer_ms:.1f} ms  {note}".rstrip()
    for text, scale, colour, thickness, y in ((headline, 0.6, (80, 255, 80), 2, BANNER_LINE_PX),
                                               (status, 0.5, (255, 255, 255), 1, 2 * BANNER_LINE_PX + 2)):
        text_width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
        if text_width > width:  # narrow frames: a smaller font rather than a cut-off line
            scale *= width / text_width
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas
