"""The optional packages of the tasks, imported when a function needs them (numpy is the only hard dependency)."""

from __future__ import annotations

from edgeship_runtime.errors import RuntimeUnavailable

VISION_EXTRA = "pip install 'edgeship-runtime[vision]'"


def cv2(what: str):
    """OpenCV, for `what` (contours, minAreaRect, NMS, resizing)."""
    try:
        import cv2 as opencv
    except ImportError:
        raise RuntimeUnavailable(f"{what} needs OpenCV: {VISION_EXTRA}") from None
    return opencv


def levenshtein(what: str):
    """rapidfuzz's Levenshtein distance (a C++ implementation; it takes strings and sequences of class ids alike)."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:
        raise RuntimeUnavailable(f"{what} needs rapidfuzz: {VISION_EXTRA}") from None
    return Levenshtein
