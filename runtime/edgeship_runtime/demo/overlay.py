"""What the demo draws: the result over the untouched frame, and the classifier's reading of an output."""

from __future__ import annotations

import math

import numpy as np

from edgeship_runtime.demo.sources import _cv2

DISPLAY_MIN_WIDTH = 320
BANNER_LINE_PX = 22


def classify(outputs: dict[str, np.ndarray], labels: list[str] | None, top: int = 3) -> dict:
    """Top classes of the first output: probabilities as given, or a softmax of logits."""
    name, value = next(iter(outputs.items()))
    scores = np.asarray(value, np.float64).reshape(-1)
    if not (scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3):
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    order = np.argsort(-scores, kind="stable")[:top]
    def name_of(i: int) -> str:
        return labels[i] if labels and i < len(labels) else str(i)

    return {"output": name, "class": int(order[0]), "label": name_of(int(order[0])), "confidence": float(scores[order[0]]),
            "top": [{"class": int(i), "label": name_of(int(i)), "confidence": float(scores[i])} for i in order]}


BANNER_PX = 2 * BANNER_LINE_PX + 12


def annotate(frame: np.ndarray, result: dict, fps: float, infer_ms: float, note: str = "") -> np.ndarray:
    """The frame under a dark banner: class and confidence, then FPS, inference time and the backend.
    The frame's own pixels are left as they are (small frames are enlarged, by pixel repetition)."""
    cv2 = _cv2()
    if frame.shape[1] < DISPLAY_MIN_WIDTH:
        factor = math.ceil(DISPLAY_MIN_WIDTH / frame.shape[1])
        frame = cv2.resize(frame, (frame.shape[1] * factor, frame.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    height = BANNER_PX
    canvas = np.empty((frame.shape[0] + height, frame.shape[1], 3), np.uint8)
    canvas[:height] = (24, 24, 24)
    canvas[height:] = frame
    width = canvas.shape[1] - 16
    headline = f"{result['label']}  {result['confidence'] * 100:.1f}%"
    status = f"{fps:.1f} FPS  infer {infer_ms:.1f} ms  {note}".rstrip()
    for text, scale, colour, thickness, y in ((headline, 0.6, (80, 255, 80), 2, BANNER_LINE_PX),
                                               (status, 0.5, (255, 255, 255), 1, 2 * BANNER_LINE_PX + 2)):
        text_width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
        if text_width > width:  # narrow frames: a smaller font rather than a cut-off line
            scale *= width / text_width
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas
