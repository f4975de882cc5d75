from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import against_labels, check_labels, validate

from .test_tasks_detect import BOXES, CLASSES, SCORES, yolov8_head

CLASSIFY = validate("classify", [{"name": "logits", "shape": [1, 3]}], None, "m")
DETECT = validate({"name": "detect", "decoder": "yolov8"}, [{"name": "output0", "shape": [1, 7, 64]}], None, "m")
SEGMENT = validate("segment", [{"name": "mask", "shape": [1, 1, 8, 8]}], None, "m")
OCR = validate("ocr-rec", [{"name": "probs", "shape": [1, 6, 4]}], ["blank", "a", "b", " "], "m")
GENERIC = validate("generic", [{"name": "y", "shape": [1, 3]}], None, "m")


def test_labels_of_the_right_format_pass():
    check_labels(CLASSIFY, np.array([0, 2, 1]), 3, "eval.npz")
    check_labels(DETECT, np.array([[0, 1, 2, 30, 40, 0], [2, 5, 5, 9, 9, 1]], np.float32), 3, "eval.npz")
    check_labels(DETECT, np.zeros((0, 6)), 3, "eval.npz")  # no objects anywhere
    check_labels(SEGMENT, np.zeros((3, 8, 8), np.uint8), 3, "eval.npz")
    check_labels(OCR, np.array(["ab", "b a", ""]), 3, "eval.npz")
    for record in (CLASSIFY, DETECT, SEGMENT, OCR, GENERIC):
        check_labels(record, None, 3, "eval.npz")


@pytest.mark.parametrize("record,labels,message", [
    (CLASSIFY, np.array([0.0, 1.0, 2.0]), "integer class ids"),
    (CLASSIFY, np.array([[0], [1], [2]]), "integer class ids"),
    (CLASSIFY, np.array([0, 1]), "for 3 samples"),
    (CLASSIFY, np.array([0, -1, 2]), "each >= 0"),
    (DETECT, np.zeros((4, 5)), r"float rows \[M, 6\]"),
    (DETECT, np.array([[3, 0, 0, 5, 5, 0]], float), "sample indices outside 0..2"),
    (DETECT, np.array([[0.5, 0, 0, 5, 5, 0]], float), "not whole"),
    (DETECT, np.array([[0, 0, 0, 5, 5, 1.5]], float), "class ids that are negative or not whole"),
    (DETECT, np.array([[0, 9, 0, 5, 5, 0]], float), "x2 < x1"),
    (DETECT, np.array([[0, 0, 0, np.nan, 5, 0]], float), r"float rows \[M, 6\]"),
    (SEGMENT, np.zeros((3, 8, 8), np.float32), r"integer class maps \[N, H, W\]"),
    (SEGMENT, np.zeros((3, 64), np.int64), r"integer class maps \[N, H, W\]"),
    (OCR, np.array([1, 2, 3]), r"unicode strings \[N\]"),
    (OCR, np.array(["a", "b", "c"], dtype=object), "not objects or bytes"),
    (OCR, np.array([b"a", b"b", b"c"]), "not objects or bytes"),
    (GENERIC, np.array([0, 1, 2]), "task 'generic' has no ground truth"),
])
def test_labels_that_do_not_fit_the_task_are_refused_in_one_line(record, labels, message):
    with pytest.raises(ArtifactError, match=message) as caught:
        check_labels(record, labels, 3, "eval.npz")
    assert str(caught.value).startswith("eval.npz: ") and "\n" not in str(caught.value)


def test_classify_accuracy():
    outputs = [{"logits": np.array([[0.1, 0.8, 0.1]])}, {"logits": np.array([[0.9, 0.0, 0.1]])}, {"logits": np.array([[0.2, 0.3, 0.5]])}]
    assert against_labels(CLASSIFY, outputs, np.array([1, 0, 0])) == {"accuracy": pytest.approx(2 / 3), "samples": 3}


def test_detect_precision_recall_f1_against_ground_truth_boxes():
    outputs = [{"output0": yolov8_head(BOXES, CLASSES, SCORES)}, {"output0": yolov8_head(BOXES[:1], [0], [0.9])}]
    truth = np.array([[0, *BOXES[0], 0], [0, *BOXES[2], 1], [0, *BOXES[3], 0],  # the third has the wrong class
                      [1, *BOXES[0], 0], [1, 200, 200, 240, 240, 1]], float)  # the second image's second object is missed
    figures = against_labels(DETECT, outputs, truth)
    assert (figures["tp"], figures["fp"], figures["fn"]) == (3, 1, 2)
    assert figures["precision"] == pytest.approx(0.75) and figures["recall"] == pytest.approx(0.6) and figures["samples"] == 2


def test_segment_mean_iou_against_label_maps():
    probability = np.zeros((1, 1, 8, 8), np.float32)
    probability[0, 0, :4] = 0.9
    truth = np.zeros((1, 8, 8), np.int64)
    truth[0, :2] = 1
    figures = against_labels(SEGMENT, [{"mask": probability}], truth)
    assert figures["mean_iou"] == pytest.approx(0.5) and figures["pixel_agreement"] == pytest.approx(0.75)
    with pytest.raises(ArtifactError, match="label maps are \\[4, 4\\]"):
        against_labels(SEGMENT, [{"mask": probability}], np.zeros((1, 4, 4), np.int64))


def test_generic_has_no_metric_against_labels():
    with pytest.raises(ArtifactError, match="no ground truth"):
        against_labels(GENERIC, [{"y": np.zeros((1, 3))}], np.array([0]))
