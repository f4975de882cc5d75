"""Each decoder against hand-made head outputs whose boxes are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import postprocess, validate
from edgeship_runtime.tasks.detect import decode, nms
from edgeship_runtime.tasks.geometry import box_iou


def yolov8_head(boxes_xyxy, classes, scores, num_classes=3, candidates=64, seed=0) -> np.ndarray:
    """A [1, 4 + C, N] head: the given boxes first, the rest faint random candidates."""
    rng = np.random.default_rng(seed)
    head = np.zeros((4 + num_classes, candidates), np.float32)
    centres = rng.uniform(20, 300, (2, candidates))
    head[:2], head[2:4] = centres, rng.uniform(5, 40, (2, candidates))
    head[4:] = rng.uniform(0, 0.1, (num_classes, candidates))  # below conf 0.25: filtered
    for i, ((x1, y1, x2, y2), cls, score) in enumerate(zip(boxes_xyxy, classes, scores)):
        head[:4, i] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        head[4 + cls, i] = score
    return head[None]


# two objects, a near-duplicate of the first (IoU ~0.9, must go), and a box over the second with another class (stays)
BOXES = [[30, 40, 110, 100], [32, 41, 112, 101], [150, 120, 250, 220], [152, 118, 252, 222]]
CLASSES = [0, 0, 1, 2]
SCORES = [0.9, 0.8, 0.7, 0.6]


def _iou_to(found: dict, box) -> float:
    return float(box_iou(found["boxes"], [box]).max(initial=0.0))


def test_yolov8_head_keeps_distinct_boxes_and_drops_the_duplicate():
    outputs = [{"name": "output0", "shape": [1, 7, 64]}]
    record = validate({"name": "detect", "decoder": "yolov8", "classes": ["cat", "dog", "bird"]}, outputs, None, "m")
    found = decode(record, {"output0": yolov8_head(BOXES, CLASSES, SCORES)})[0]
    assert found["classes"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(found["scores"], [0.9, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(found["boxes"], np.array(BOXES)[[0, 2, 3]], atol=1e-4)
    result = postprocess(record, {"output0": yolov8_head(BOXES, CLASSES, SCORES)}, None)
    assert [b["label"] for b in result["boxes"]] == ["cat", "dog", "bird"] and result["boxes"][0]["quad"] is None
    assert result["kind"] == "detect" and result["boxes"][0]["box"] == pytest.approx(BOXES[0])


def test_yolov8_conf_and_max_det_limit_the_boxes():
    record = validate({"name": "detect", "decoder": "yolov8", "conf": 0.75, "max_det": 1}, [{"name": "o", "shape": [1, 7, 64]}], None, "m")
    found = decode(record, {"o": yolov8_head(BOXES, CLASSES, SCORES)})[0]
    assert found["scores"].tolist() == pytest.approx([0.9])
    everything = validate({"name": "detect", "decoder": "yolov8", "conf": 0.0, "iou": 1.0}, [{"name": "o", "shape": [1, 7, 64]}], None, "m")
    assert len(decode(everything, {"o": yolov8_head(BOXES, CLASSES, SCORES)})[0]["boxes"]) == 64


def test_yolov5_head_multiplies_objectness_and_class_scores():
    rows = np.zeros((40, 5 + 3), np.float32)
    rows[:, :4] = [100, 100, 20, 20]
    rows[:, 4] = 0.05  # background candidates: objectness below conf
    for i, ((x1, y1, x2, y2), cls) in enumerate(zip(BOXES, CLASSES)):
        rows[i, :4] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        rows[i, 4], rows[i, 5 + cls] = 0.9, [1.0, 0.8, 0.9, 0.5][i]
    rows[5, :5], rows[5, 6] = [300, 300, 40, 40, 0.2], 1.0  # a sure class without objectness: dropped (0.2 < conf)
    record = validate({"name": "detect", "decoder": "yolov5"}, [{"name": "o", "shape": [1, 40, 8]}], None, "m")
    found = decode(record, {"o": rows[None]})[0]
    assert found["classes"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(found["scores"], [0.9, 0.81, 0.45], rtol=1e-6)
    np.testing.assert_allclose(found["boxes"], np.array(BOXES)[[0, 2, 3]], atol=1e-4)


def _anchor_grid(cells: int) -> np.ndarray:
    """[cells * cells, 4] anchors (ycenter, xcenter, h, w), one square anchor per cell."""
    centres = (np.arange(cells) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([ys.ravel(), xs.ravel(), np.full(cells * cells, 1 / cells), np.full(cells * cells, 1 / cells)], axis=1)


def _encode(box_yxhw, anchor, scales=(10, 10, 5, 5)) -> list[float]:
    y, x, h, w = box_yxhw
    ya, xa, ha, wa = anchor
    return [(y - ya) / ha * scales[0], (x - xa) / wa * scales[1], np.log(h / ha) * scales[2], np.log(w / wa) * scales[3]]


@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
def test_ssd_decodes_offsets_against_the_anchor_file(tmp_path, score):
    anchors = _anchor_grid(4)
    np.save(tmp_path / "anchors.npy", anchors)
    truth = {5: ((0.30, 0.35, 0.20, 0.30), 1), 10: ((0.62, 0.60, 0.35, 0.15), 0)}  # anchor -> ((yc, xc, h, w), class)
    encoded = np.zeros((16, 4), np.float32)
    background = score == "softmax"
    logits = np.full((16, 2 + background), -6.0, np.float32)
    if background:
        logits[:, 0] = 6.0
    for index, (box, cls) in truth.items():
        encoded[index] = _encode(box, anchors[index])
        logits[index] = -6.0
        logits[index, cls + background] = 6.0
    outputs = [{"name": "raw_boxes", "shape": [1, 16, 4]}, {"name": "raw_scores", "shape": [1, 16, 2 + background]}]
    record = validate({"name": "detect", "decoder": "ssd", "anchors": "anchors.npy", "score": score}, outputs, None, "m",
                      inputs=[{"name": "image", "shape": [1, 200, 100, 3]}])
    found = decode(record, {"raw_boxes": encoded[None], "raw_scores": logits[None]}, tmp_path)[0]
    expected = [[(xc - w / 2) * 100, (yc - h / 2) * 200, (xc + w / 2) * 100, (yc + h / 2) * 200] for (yc, xc, h, w), _ in truth.values()]
    assert sorted(found["classes"].tolist()) == [0, 1]
    order = np.argsort(found["classes"])[::-1]  # class 1 (anchor 5) first, as in `truth`
    np.testing.assert_allclose(found["boxes"][order], expected, atol=1e-3)
    with pytest.raises(ArtifactError, match="anchors file named by the task record is missing"):
        decode(record, {"raw_boxes": encoded[None], "raw_scores": logits[None]}, tmp_path / "elsewhere")


def _rect_mask(shape, quad) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(quad)).astype(np.int32)], 1)
    return mask


def test_db_finds_drawn_text_boxes_grown_by_unclip():
    height, width = 160, 224
    probability = np.full((height, width), 0.02, np.float32)
    drawn = [((50.0, 30.0), (70.0, 16.0), 0.0), ((160.0, 40.0), (60.0, 24.0), 0.0), ((110.0, 110.0), (110.0, 20.0), 20.0)]
    for rect in drawn:
        cv2.fillPoly(probability, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 0.9)
    probability[140:143, 10:13] = 0.9     # a speck below min_size
    probability[128:156, 176:220] = 0.45  # above thresh, but its mean is below box_thresh
    record = validate({"name": "detect", "decoder": "db"}, [{"name": "maps", "shape": [1, 1, height, width]}], None, "m")
    found = decode(record, {"maps": probability[None, None]})[0]
    assert len(found["quads"]) == 3
    # the mean over the fitted box: 0.9 inside, a few background pixels on a rotated box's jagged edge
    assert np.all((found["scores"] > 0.8) & (found["scores"] <= 0.9 + 1e-6))
    for (centre, (w, h), angle) in drawn:
        # PaddleOCR's unclip offsets by d = area * ratio / perimeter; a filled w x h rectangle's contour runs
        # through its edge pixels' centres, so it measures about (w - 1) x (h - 1).
        inner_w, inner_h = w - 1, h - 1
        grow = inner_w * inner_h * 1.5 / (2 * (inner_w + inner_h))
        expected = _rect_mask((height, width), cv2.boxPoints((centre, (inner_w + 2 * grow, inner_h + 2 * grow), angle)))
        overlaps = [np.count_nonzero(expected & _rect_mask(expected.shape, q)) / np.count_nonzero(expected | _rect_mask(expected.shape, q))
                    for q in found["quads"]]
        assert max(overlaps) > 0.8, (centre, overlaps)
    rotated = found["quads"][np.argmax([np.ptp(q[:, 1]) for q in found["quads"]])]
    top_left, top_right = rotated[0], rotated[1]
    assert np.degrees(np.arctan2(top_right[1] - top_left[1], top_right[0] - top_left[0])) == pytest.approx(20, abs=2)
    text = postprocess(record, {"maps": probability[None, None]}, None)
    assert {b["label"] for b in text["boxes"]} == {"text"} and all(len(b["quad"]) == 4 for b in text["boxes"])


def test_db_on_an_empty_map_finds_nothing():
    record = validate({"name": "detect", "decoder": "db"}, [{"name": "maps", "shape": [1, 1, 32, 32]}], None, "m")
    found = decode(record, {"maps": np.zeros((1, 1, 32, 32), np.float32)})[0]
    assert found["boxes"].shape == (0, 4) and found["quads"].shape == (0, 4, 2)


def test_nms_drops_the_overlapping_duplicate_and_keeps_distinct_boxes():
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [200, 200, 260, 260]], float)  # IoU of the first two: 0.82
    scores = np.array([0.6, 0.9, 0.5])
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]  # below the IoU threshold: both stay
    assert nms(boxes, scores, 0.45, classes=np.array([0, 1, 0])).tolist() == [1, 0, 2]  # different classes never suppress
    assert nms(boxes, scores, 0.45, classes=np.array([1, 1, 0])).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
