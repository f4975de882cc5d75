"""SSD anchors generated from MediaPipe's anchor options, and MediaPipe's weighted non-maximum
suppression: what the `ssd` decoder (tasks/decoders.py) needs to read BlazeFace-style detectors
from their task record alone, without an anchors file.

`generate_anchors` follows MediaPipe's SsdAnchorsCalculator (calculators/tflite/ssd_anchors_calculator.cc,
its non-multiscale path): layers that share a stride are merged into one grid whose cells carry the
anchors of all of them, in layer order; each layer adds one anchor per aspect ratio at its scale
(interpolated linearly from min_scale to max_scale over the strides) and, with
interpolated_scale_aspect_ratio > 0, one more at the geometric mean of its scale and the next
layer's (1.0 after the last). Centres are (cell + offset) / grid size, normalized; with
fixed_anchor_size every anchor is 1 x 1 (the model's box regressors then carry the whole size).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from edgeship_runtime.errors import ArtifactError

# MediaPipe's SsdAnchorsCalculatorOptions, as a task record names them: key -> (default or None: required, kind)
ANCHOR_OPTIONS: dict[str, tuple] = {
    "num_layers": (None, "count"), "strides": (None, "numbers"), "min_scale": (None, "positive"), "max_scale": (None, "positive"),
    "input_size_height": (None, "count"), "input_size_width": (None, "count"),
    "anchor_offset_x": (0.5, "fraction"), "anchor_offset_y": (0.5, "fraction"), "aspect_ratios": ([1.0], "numbers"),
    "reduce_boxes_in_lowest_layer": (False, "bool"), "interpolated_scale_aspect_ratio": (1.0, "number"),
    "fixed_anchor_size": (False, "bool"),
}


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    """The scale of layer `index` of `count`: linear from min_scale to max_scale (their mean for one)."""
    if count == 1:
        return (min_scale + max_scale) / 2
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def _options(record: dict, where: str) -> tuple:
    """The anchor options of a record, checked, as a hashable tuple in ANCHOR_OPTIONS' order."""
    values: dict[str, Any] = {key: record.get(key) for key in ANCHOR_OPTIONS}
    missing = [key for key in ("num_layers", "strides", "min_scale", "max_scale", "input_size_height", "input_size_width")
               if values[key] is None]
    if missing:
        raise ArtifactError(f"{where}: ssd anchors generated from options need {', '.join(missing)} "
                            "(as MediaPipe's SsdAnchorsCalculator takes them), or an \"anchors\" .npy file")
    strides = values["strides"]
    if any(stride != int(stride) for stride in strides):
        raise ArtifactError(f"{where}: task parameter strides={strides!r} must be whole numbers of input pixels")
    if len(strides) != values["num_layers"]:
        raise ArtifactError(f"{where}: num_layers={values['num_layers']} but strides lists {len(strides)}; "
                            "give one stride per layer")
    if values["min_scale"] > values["max_scale"]:
        raise ArtifactError(f"{where}: min_scale={values['min_scale']} is above max_scale={values['max_scale']}")
    values["strides"] = [int(stride) for stride in strides]
    return tuple(tuple(v) if isinstance(v, list) else v for v in (values[key] for key in ANCHOR_OPTIONS))


def anchors_from(record: dict, where: str = "ssd") -> np.ndarray:
    """The anchors [N, 4] (ycenter, xcenter, h, w; normalized) a record's options generate."""
    return _generate(*_options(record, where))


def generate_anchors(**options) -> np.ndarray:
    """Anchors from MediaPipe's option names (defaults as ANCHOR_OPTIONS), for tests and tools."""
    record = {key: default for key, (default, _) in ANCHOR_OPTIONS.items()}
    return anchors_from({**record, **options}, "generate_anchors")


@lru_cache(maxsize=16)
def _generate(num_layers, strides, min_scale, max_scale, input_h, input_w, offset_x, offset_y, aspect_ratios,
              reduce_lowest, interpolated_ratio, fixed_size) -> np.ndarray:
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < num_layers:
        ratios: list[float] = []
        scales: list[float] = []
        last = layer
        # consecutive layers with the same stride share one grid: their anchors interleave per cell
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(min_scale, max_scale, last, len(strides))
            if last == 0 and reduce_lowest:
                # the lowest layer's fixed three (as TF Object Detection API's reduce_boxes_in_lowest_layer)
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(aspect_ratios)
                scales += [scale] * len(aspect_ratios)
                if interpolated_ratio > 0:
                    following = 1.0 if last == len(strides) - 1 else _scale(min_scale, max_scale, last + 1, len(strides))
                    ratios.append(interpolated_ratio)
                    scales.append(math.sqrt(scale * following))
            last += 1
        sizes = [(s / math.sqrt(r), s * math.sqrt(r)) for s, r in zip(scales, ratios)]  # (h, w)
        grid_h, grid_w = math.ceil(input_h / strides[layer]), math.ceil(input_w / strides[layer])
        for y in range(grid_h):
            for x in range(grid_w):
                centre_y, centre_x = (y + offset_y) / grid_h, (x + offset_x) / grid_w
                rows += [(centre_y, centre_x, 1.0, 1.0) if fixed_size else (centre_y, centre_x, h, w) for h, w in sizes]
        layer = last
    anchors = np.asarray(rows, np.float64).reshape(-1, 4)
    anchors.setflags(write=False)  # cached: shared by every caller
    return anchors


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float,
                 max_det: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression (NonMaxSuppressionCalculator), as its face
    detection graphs use it: take the best remaining box; every remaining box whose IoU with it is
    above `iou` (itself included) is removed and blended into it, corners and keypoints averaged
    weighted by score; the blend keeps the best box's score. Done by hand: OpenCV's NMSBoxes (used
    for plain NMS) only says which boxes survive, never blends the ones it suppresses.
    boxes [K, 4] x1 y1 x2 y2, scores [K], keypoints [K, P, 2] -> the same, best score first."""
    boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1)
    keypoints = np.asarray(keypoints, np.float64)
    keypoints = keypoints.reshape(len(boxes), keypoints.size // max(1, 2 * len(boxes)), 2)
    remaining = np.argsort(-scores, kind="stable")
    kept_boxes: list[np.ndarray] = []
    kept_scores: list[float] = []
    kept_points: list[np.ndarray] = []
    while len(remaining) and (not max_det or len(kept_boxes) < max_det):
        best = boxes[remaining[0]]
        others = boxes[remaining]
        width = np.clip(np.minimum(others[:, 2], best[2]) - np.maximum(others[:, 0], best[0]), 0, None)
        height = np.clip(np.minimum(others[:, 3], best[3]) - np.maximum(others[:, 1], best[1]), 0, None)
        overlap = width * height
        union = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) + (best[2] - best[0]) * (best[3] - best[1]) - overlap
        similarity = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        similarity[0] = np.inf  # the best box is always among the boxes blended into it
        merged = remaining[similarity > iou]
        weights = scores[merged] if scores[merged].sum() > 0 else np.ones(len(merged))
        kept_boxes.append((boxes[merged] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_points.append((keypoints[merged] * weights[:, None, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[remaining[0]])
        remaining = remaining[similarity <= iou]
    return (np.asarray(kept_boxes, np.float64).reshape(-1, 4), np.asarray(kept_scores, np.float64),
            np.asarray(kept_points, np.float64).reshape(len(kept_boxes), keypoints.shape[1], 2))
