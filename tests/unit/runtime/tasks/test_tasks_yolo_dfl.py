"""The yolov8_dfl decoder (a YOLOv8/YOLO11 head cut before its DFL, targets/yolo_head.py) against
hand-made per-level outputs whose boxes are known."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import postprocess, validate
from edgeship_runtime.tasks.detect import decode

BINS, CLASSES, INPUT = 16, 3, [1, 3, 64, 64]
SPECS = [{"name": "boxes_stride8", "shape": [1, 4 * BINS, 8, 8]}, {"name": "scores_stride8", "shape": [1, CLASSES, 8, 8]},
         {"name": "boxes_stride16", "shape": [1, 4 * BINS, 4, 4]}, {"name": "scores_stride16", "shape": [1, CLASSES, 4, 4]}]
RECORD = {"name": "detect", "decoder": "yolov8_dfl", "conf": 0.25, "box_outputs": ["boxes_stride8", "boxes_stride16"],
          "score_outputs": ["scores_stride8", "scores_stride16"]}


def level(grid: int, planted: dict) -> tuple[np.ndarray, np.ndarray]:
    """Box logits [1, 4B, g, g] (uniform, except each planted cell's sides peaked on whole distances) and
    scores [1, C, g, g] (0.01, except each planted cell's class): planted = {(y, x): (ltrb cells, class, score)}."""
    logits = np.zeros((1, 4, BINS, grid, grid), np.float32)
    scores = np.full((1, CLASSES, grid, grid), 0.01, np.float32)
    for (y, x), (sides, cls, score) in planted.items():
        for side, distance in enumerate(sides):
            logits[0, side, distance, y, x] = 30.0  # softmax ~ one-hot: the expected distance is `distance`
        scores[0, cls, y, x] = score
    return logits.reshape(1, 4 * BINS, grid, grid), scores


def outputs(small: dict, large: dict) -> dict:
    boxes8, scores8 = level(8, small)
    boxes16, scores16 = level(4, large)
    return {"boxes_stride8": boxes8, "scores_stride8": scores8, "boxes_stride16": boxes16, "scores_stride16": scores16}


def test_a_peaked_distribution_decodes_to_its_distances_from_the_cell_centre_times_the_stride():
    record = validate(RECORD, SPECS, None, "m", [{"name": "images", "shape": INPUT}])
    assert record["input_size"] == [64, 64]  # read off the input: the strides are 64/8 and 64/4
    found = decode(record, outputs({(1, 2): ((1, 2, 3, 0), 1, 0.9)}, {(3, 0): ((0, 1, 2, 3), 2, 0.6)}))[0]
    # stride 8, cell centre (2.5, 1.5): x1 = (2.5 - 1) * 8, y1 = (1.5 - 2) * 8, x2 = (2.5 + 3) * 8, y2 = (1.5 + 0) * 8
    # stride 16, cell centre (0.5, 3.5): x1 = 0.5 * 16, y1 = 2.5 * 16, x2 = 2.5 * 16, y2 = 6.5 * 16
    np.testing.assert_allclose(found["boxes"], [[12, -4, 44, 12], [8, 40, 40, 104]], atol=1e-3)
    assert found["classes"].tolist() == [1, 2]
    np.testing.assert_allclose(found["scores"], [0.9, 0.6], rtol=1e-6)


def test_uniform_logits_put_each_side_at_the_mean_distance():
    record = validate(RECORD, SPECS, None, "m", [{"name": "images", "shape": INPUT}])
    found = decode(record, outputs({}, {(0, 0): ((0, 0, 0, 0), 0, 0.5)}) | {"boxes_stride16": np.zeros((1, 64, 4, 4), np.float32)})[0]
    np.testing.assert_allclose(found["boxes"], [[(0.5 - 7.5) * 16, (0.5 - 7.5) * 16, (0.5 + 7.5) * 16, (0.5 + 7.5) * 16]], atol=1e-6)


def test_conf_is_strict_and_nms_drops_a_same_class_duplicate_across_levels():
    planted_small = {(3, 3): ((2, 2, 2, 2), 0, 0.8), (6, 6): ((1, 1, 1, 1), 1, 0.25)}  # the second sits on conf: not kept
    planted_large = {(1, 1): ((1, 1, 1, 1), 0, 0.7)}  # [8, 8, 40, 40] over [12, 12, 44, 44]: IoU 0.62 > 0.45, dropped
    record = validate(RECORD, SPECS, None, "m", [{"name": "images", "shape": INPUT}])
    found = decode(record, outputs(planted_small, planted_large))[0]
    np.testing.assert_allclose(found["boxes"], [[12, 12, 44, 44]], atol=1e-3)
    other_class = {(1, 1): ((1, 1, 1, 1), 2, 0.7)}  # another class over the same box stays
    assert decode(record, outputs(planted_small, other_class))[0]["classes"].tolist() == [0, 2]


def test_a_batch_decodes_per_image_and_postprocess_names_the_classes():
    record = validate({**RECORD, "classes": ["cat", "dog", "bird"]}, SPECS, None, "m", [{"name": "images", "shape": INPUT}])
    first, second = outputs({(1, 2): ((1, 2, 3, 0), 1, 0.9)}, {}), outputs({}, {})
    batch = {name: np.concatenate([first[name], second[name]]) for name in first}
    found = decode(record, batch)
    assert [len(image["boxes"]) for image in found] == [1, 0]
    result = postprocess(record, first, None)
    assert result["kind"] == "detect" and result["boxes"][0]["label"] == "dog" and result["boxes"][0]["box"] == pytest.approx([12, -4, 44, 12])


@pytest.mark.parametrize("change, specs, message", [
    ({"score_outputs": ["scores_stride8"]}, SPECS, r"2 box and 1 score outputs"),
    ({"box_outputs": ["boxes_stride8", "nope"]}, SPECS, r"\['nope'\] are not outputs of the model"),
    ({}, [SPECS[0], {"name": "scores_stride8", "shape": [1, CLASSES, 4, 4]}, *SPECS[2:]], r"do not fit; it needs per level boxes"),
    ({}, [{"name": "boxes_stride8", "shape": [1, 66, 8, 8]}, *SPECS[1:]], r"do not fit"),
    ({}, [*SPECS[:3], {"name": "scores_stride16", "shape": [1, 5, 4, 4]}], r"have \[3, 5\] classes"),
    ({"classes": ["cat", "dog"]}, SPECS, r"scores have 3 classes, but \"classes\" names 2"),
    ({"input_size": [60, 64]}, SPECS, r"grid \[8, 8\] does not divide the input size \[60, 64\]"),
])
def test_outputs_that_do_not_fit_are_refused_in_one_line(change, specs, message):
    with pytest.raises(ArtifactError, match=message):
        validate({**RECORD, **change}, specs, None, "m", [{"name": "images", "shape": INPUT}])


def test_without_an_image_input_the_input_size_is_required():
    with pytest.raises(ArtifactError, match=r"needs \"input_size\""):
        validate(RECORD, SPECS, None, "m", [{"name": "x", "shape": [1, 10]}])
    with pytest.raises(ArtifactError, match=r"needs the parameter 'box_outputs'"):
        validate({"name": "detect", "decoder": "yolov8_dfl"}, SPECS, None, "m", [{"name": "images", "shape": INPUT}])
