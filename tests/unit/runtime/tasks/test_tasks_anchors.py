"""ssd anchors generated from MediaPipe's options (tasks/anchors.py) and boxes, keypoints and weighted
NMS decoded as MediaPipe's TensorsToDetectionsCalculator and NonMaxSuppressionCalculator do, on
hand-made regressors whose boxes are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.anchors import generate_anchors, weighted_nms
from edgeship_runtime.tasks.decoders import decode
from edgeship_runtime.tasks.record import validate

# BlazeFace short range, as mediapipe/modules/face_detection/face_detection_short_range.pbtxt sets it
SHORT_RANGE = {"num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "input_size_height": 128, "input_size_width": 128,
               "anchor_offset_x": 0.5, "anchor_offset_y": 0.5, "strides": [8, 16, 16, 16], "aspect_ratios": [1.0],
               "fixed_anchor_size": True, "interpolated_scale_aspect_ratio": 1.0}
DECODING = {"x_scale": 128.0, "y_scale": 128.0, "w_scale": 128.0, "h_scale": 128.0, "num_coords": 16, "keypoint_coord_offset": 4,
            "num_keypoints": 6, "sigmoid_score": True, "score_clipping_thresh": 100.0, "reverse_output_order": True,
            "min_score_thresh": 0.5, "nms": "weighted", "iou": 0.3}
OUTPUTS = [{"name": "regressors", "shape": [1, 896, 16]}, {"name": "classificators", "shape": [1, 896, 1]}]
IMAGE = [{"name": "input", "shape": [1, 128, 128, 3]}]


def _record(**changes) -> dict:
    task = {"name": "detect", "decoder": "ssd", "output": "regressors", "scores_output": "classificators",
            **SHORT_RANGE, **DECODING, **changes}
    return validate(task, OUTPUTS, None, "task.json", IMAGE)


def test_short_range_options_generate_896_anchors_two_per_cell_at_stride_8_then_six_at_16():
    anchors = generate_anchors(**SHORT_RANGE)
    assert anchors.shape == (896, 4)  # 16 x 16 cells x 2 + 8 x 8 cells x (3 layers x 2)
    np.testing.assert_allclose(anchors[:3], [[1 / 32, 1 / 32, 1, 1], [1 / 32, 1 / 32, 1, 1], [1 / 32, 3 / 32, 1, 1]])
    np.testing.assert_allclose(anchors[32], [3 / 32, 1 / 32, 1, 1])  # row 1 of the 16 x 16 grid starts after 16 cells x 2
    np.testing.assert_allclose(anchors[512:519], [[1 / 16, 1 / 16, 1, 1]] * 6 + [[1 / 16, 3 / 16, 1, 1]])
    np.testing.assert_allclose(anchors[-1], [15 / 16, 15 / 16, 1, 1])


def test_anchor_sizes_follow_the_scales_their_aspect_ratios_and_the_interpolated_one():
    anchors = generate_anchors(**{**SHORT_RANGE, "fixed_anchor_size": False, "aspect_ratios": [1.0, 4.0]})
    scales = [0.1484375 + (0.75 - 0.1484375) * i / 3 for i in range(4)]
    assert len(anchors) == 16 * 16 * 3 + 8 * 8 * 9
    first = anchors[:3, 2:]  # layer 0 (stride 8): ratio 1, ratio 4 (h = s / 2, w = 2 s), interpolated sqrt(s0 s1)
    np.testing.assert_allclose(first, [[scales[0], scales[0]], [scales[0] / 2, scales[0] * 2],
                                       [math.sqrt(scales[0] * scales[1])] * 2])
    last = anchors[768 + 6:768 + 9, 2:]  # the last layer's interpolated scale uses 1.0 as the next one
    np.testing.assert_allclose(last, [[scales[3], scales[3]], [scales[3] / 2, scales[3] * 2], [math.sqrt(scales[3])] * 2])


def test_the_lowest_layer_can_be_reduced_to_three_fixed_boxes():
    anchors = generate_anchors(num_layers=2, min_scale=0.2, max_scale=0.9, input_size_height=64, input_size_width=32,
                               strides=[16, 32], aspect_ratios=[1.0, 2.0], reduce_boxes_in_lowest_layer=True,
                               interpolated_scale_aspect_ratio=0.0, anchor_offset_x=0.0, anchor_offset_y=0.0)
    assert len(anchors) == 4 * 2 * 3 + 2 * 1 * 2
    root = math.sqrt(2)
    np.testing.assert_allclose(anchors[:3], [[0, 0, 0.1, 0.1], [0, 0, 0.2 / root, 0.2 * root], [0, 0, 0.2 * root, 0.2 / root]])
    np.testing.assert_allclose(anchors[3], [0, 0.5, 0.1, 0.1])  # the next cell: x over a 2-wide grid, no offset


def _row(box_xywh, anchor, points=()) -> np.ndarray:
    """MediaPipe's encoding (reverse_output_order: x first), scales 128, anchors 1 x 1: offsets in pixels."""
    x, y, w, h = box_xywh
    row = np.zeros(16, np.float32)
    row[:4] = [(x - anchor[1]) * 128, (y - anchor[0]) * 128, w * 128, h * 128]
    for k, (px, py) in enumerate(points):
        row[4 + 2 * k:6 + 2 * k] = [(px - anchor[1]) * 128, (py - anchor[0]) * 128]
    return row


def test_regressors_decode_to_their_boxes_and_keypoints_in_input_pixels():
    anchors = generate_anchors(**SHORT_RANGE)
    regressors, logits = np.zeros((896, 16), np.float32), np.full((896, 1), -8.0, np.float32)
    points = [(0.40 + 0.02 * k, 0.30 + 0.01 * k) for k in range(6)]
    regressors[100] = _row((0.40, 0.30, 0.25, 0.20), anchors[100], points)  # x, y, w, h normalized
    regressors[700] = _row((0.75, 0.80, 0.10, 0.30), anchors[700])
    logits[100], logits[700] = 3.0, 1.0
    logits[5], logits[6] = 0.0, 5.0  # sigmoid 0.5: kept, as MediaPipe keeps a score >= min_score_thresh
    regressors[5] = _row((0.10, 0.90, 0.05, 0.05), anchors[5])
    regressors[6] = _row((0.90, 0.10, -0.05, 0.05), anchors[6])  # a negative width: dropped, whatever its score
    found = decode(_record(), {"regressors": regressors[None], "classificators": logits[None]})[0]
    np.testing.assert_allclose(found["boxes"], [[35.2, 25.6, 67.2, 51.2], [89.6, 83.2, 102.4, 121.6], [9.6, 112, 16, 118.4]],
                               atol=1e-3)
    np.testing.assert_allclose(found["scores"], [1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-1)), 0.5], rtol=1e-6)
    np.testing.assert_allclose(found["landmarks"][0], np.asarray(points) * 128, atol=1e-3)
    assert found["landmarks"].shape == (3, 6, 2) and found["classes"].tolist() == [0, 0, 0]
    clipped = decode(_record(score_clipping_thresh=0.1), {"regressors": regressors[None], "classificators": logits[None]})[0]
    np.testing.assert_allclose(clipped["scores"], [1 / (1 + math.exp(-0.1))] * 2 + [0.5], rtol=1e-6)  # logits clipped to 0.1


def test_y_first_rows_exponential_sizes_and_clipped_logits():
    anchors = generate_anchors(**{**SHORT_RANGE, "fixed_anchor_size": False})
    regressors, logits = np.zeros((896, 16), np.float32), np.full((896, 1), -500.0, np.float32)
    y, x, h, w = 0.5, 0.25, 0.3, 0.2
    ya, xa, ha, wa = anchors[300]
    regressors[300, :4] = [(y - ya) / ha * 10, (x - xa) / wa * 10, math.log(h / ha) * 5, math.log(w / wa) * 5]
    logits[300] = 500.0  # clipped to 100 before the sigmoid, and not an overflow
    record = _record(x_scale=10.0, y_scale=10.0, h_scale=5.0, w_scale=5.0, reverse_output_order=False,
                     apply_exponential_on_box_size=True, fixed_anchor_size=False, num_keypoints=0)
    found = decode(record, {"regressors": regressors[None], "classificators": logits[None]})[0]
    np.testing.assert_allclose(found["boxes"], [[(x - w / 2) * 128, (y - h / 2) * 128, (x + w / 2) * 128, (y + h / 2) * 128]],
                               atol=1e-3)
    assert found["landmarks"].shape == (1, 0, 2)


def test_weighted_nms_blends_the_overlapping_boxes_by_score_and_keeps_the_best_score():
    boxes = np.array([[10, 10, 50, 50], [14, 14, 54, 54], [12, 8, 52, 48], [80, 80, 100, 100]], np.float64)
    scores = np.array([0.9, 0.6, 0.3, 0.8])
    points = np.arange(8, dtype=np.float64).reshape(4, 1, 2) * 10
    kept_boxes, kept_scores, kept_points = weighted_nms(boxes, scores, points, 0.3)
    blend = (boxes[:3] * scores[:3, None]).sum(axis=0) / scores[:3].sum()
    np.testing.assert_allclose(kept_boxes, [blend, boxes[3]])
    np.testing.assert_allclose(kept_scores, [0.9, 0.8])
    np.testing.assert_allclose(kept_points[0], (points[:3] * scores[:3, None, None]).sum(axis=0) / scores[:3].sum())
    # a box whose IoU with the best is 0.3 exactly is not blended (MediaPipe: similarity > threshold)
    touching = np.array([[0, 0, 10, 10], [0, 0, 10, 3]], np.float64)
    np.testing.assert_allclose(weighted_nms(touching, np.array([0.9, 0.8]), np.zeros((2, 0, 2)), 0.3)[0], touching)
    assert len(weighted_nms(boxes, scores, points, 0.3, max_det=1)[0]) == 1


def test_plain_nms_keeps_the_best_box_unblended():
    anchors = generate_anchors(**SHORT_RANGE)
    regressors, logits = np.zeros((896, 16), np.float32), np.full((896, 1), -8.0, np.float32)
    regressors[100] = _row((0.40, 0.30, 0.25, 0.20), anchors[100])
    regressors[101] = _row((0.42, 0.30, 0.25, 0.20), anchors[101])
    logits[100], logits[101] = 2.0, 1.0
    outputs = {"regressors": regressors[None], "classificators": logits[None]}
    plain = decode(_record(nms="plain"), outputs)[0]
    np.testing.assert_allclose(plain["boxes"], [[35.2, 25.6, 67.2, 51.2]], atol=1e-3)
    weighted = decode(_record(), outputs)[0]
    assert len(weighted["boxes"]) == 1 and 35.2 < weighted["boxes"][0, 0] < 35.2 + 0.02 * 128


@pytest.mark.parametrize("changes,message", [
    ({"strides": [8, 16, 16]}, "num_layers=4 but strides lists 3"),
    ({"strides": [8, 16, 32, 32]}, "generate 704 anchors for 896 boxes"),
    ({"strides": [8, 16.5, 16, 16]}, "must be whole numbers"),
    ({"min_scale": None}, "need min_scale"),
    ({"anchors": "anchors.npy"}, "not both"),
    ({"num_keypoints": 7}, "7 keypoints .* need 18 values per box; num_coords is 16"),
    ({"x_scale": None}, "x_scale, y_scale, w_scale and h_scale together"),
    ({"num_coords": 4}, r"ssd needs box offsets \[1, N, 4\]"),
])
def test_options_that_cannot_fit_the_model_fail_at_validation(changes, message):
    with pytest.raises(ArtifactError, match=message):
        _record(**changes)


def test_the_input_size_defaults_to_the_models():
    record = _record(input_size_height=None, input_size_width=None)
    assert (record["input_size_height"], record["input_size_width"]) == (128, 128) and record["anchors"] is None
    assert record["apply_exponential_on_box_size"] is False and record["score"] == "sigmoid"
