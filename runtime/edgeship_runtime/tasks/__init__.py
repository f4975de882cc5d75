"""What a model is for, and how to judge and read its outputs by it (numpy only at import time).

Shared by the conversion worker (inside toolchain images), `edgeship-runtime check` on the board and
the camera demo. OpenCV (contours, rotated rectangles, NMS, resizing) and rapidfuzz (edit distance)
are imported by the functions that need them; without them those raise RuntimeUnavailable naming
the `vision` extra.
"""

from __future__ import annotations

from edgeship_runtime.tasks.compare import compare
from edgeship_runtime.tasks.geometry import boxes_to_frame, boxes_to_input, fit_transform, letterbox, match_boxes
from edgeship_runtime.tasks.labels import against_labels, check_labels
from edgeship_runtime.tasks.postprocess import postprocess
from edgeship_runtime.tasks.record import DECODERS, TASK_NAMES, validate
from edgeship_runtime.tasks.tolerances import default_tolerances

# Per task, its headline figures for one-line summaries and reports:
# (key in compare()'s metrics, its name; key in against_labels()'s figures, its name).
HEADLINES: dict[str, tuple[str | None, str, str | None, str]] = {
    "classify": ("top1_agreement", "top-1 agreement", "accuracy", "accuracy"),
    "detect": ("f1", "detection F1", "f1", "detection F1"),
    "segment": ("mean_iou", "mean IoU", "mean_iou", "mean IoU"),
    "ocr-rec": ("char_agreement", "character agreement", "char_accuracy", "character accuracy"),
    "generic": (None, "", None, ""),
}

# The runtime extra a board needs to judge and read a task's outputs (OpenCV, rapidfuzz).
TASK_EXTRAS = {"detect": "vision", "segment": "vision", "ocr-rec": "vision"}

__all__ = ["HEADLINES", "TASK_EXTRAS", "DECODERS", "TASK_NAMES", "against_labels", "boxes_to_frame", "boxes_to_input", "check_labels", "compare",
           "default_tolerances", "fit_transform", "letterbox", "match_boxes", "postprocess", "validate"]
