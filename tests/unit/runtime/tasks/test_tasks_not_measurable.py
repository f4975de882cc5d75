"""A metric over nothing is not a score (issue 26): no reference boxes, no text, no foreground give None
and a reason, and a gate never passes on them: the verdict falls back to the generic per-output gates
(cosine, SNR, range error) and says so, or fails when the tolerances hold none."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.tasks import against_labels, compare, default_tolerances, validate
from edgeship_runtime.tasks.compare import shortfall

from .test_tasks_detect import yolov8_head

YOLO_OUTPUTS = [{"name": "output0", "shape": [1, 7, 64]}]


def _empty_detector(count: int = 3) -> list[dict]:
    """fp32 outputs of a random-weight YOLOv8 head: every candidate below conf, so no box anywhere."""
    return [{"output0": yolov8_head([], [], [], seed=index)} for index in range(count)]


def _record() -> dict:
    return validate({"name": "detect", "decoder": "yolov8"}, YOLO_OUTPUTS, None, "m")


def test_no_reference_boxes_is_not_f1_1_and_the_verdict_is_the_tensors():
    reference = _empty_detector()
    converted = [{"output0": s["output0"].astype(np.float16).astype(np.float32)} for s in reference]
    report = compare(_record(), reference, converted, default_tolerances("detect", "fp16"))
    metrics = report["metrics"]
    assert metrics["f1"] is None and metrics["precision"] is None and metrics["recall"] is None
    assert metrics["not_measurable"] == "fp32 finds no box on any sample" and metrics["reference_boxes"] == 0
    assert report["passed"] and report["failed"] == []
    assert report["judged_by"] == ["every output's min_cosine, min_snr_db, max_range_error (instead: detection F1 against fp32 at "
                                   "IoU 0.5 not measurable (fp32 finds no box on any sample))"]


def test_no_reference_boxes_and_a_broken_conversion_fails_by_cosine():
    reference = _empty_detector()
    converted = [{"output0": s["output0"][:, ::-1].copy()} for s in reference]  # rows shuffled: cosine falls, still no box
    report = compare(_record(), reference, converted, default_tolerances("detect", "fp16"))
    assert report["metrics"]["f1"] is None and not report["passed"]
    assert len(report["failed"]) == 2 and "(min_cosine)" in report["failed"][0] and "(min_snr_db)" in report["failed"][1]


def test_no_reference_boxes_without_generic_tolerances_fails_with_the_reason():
    reference = _empty_detector()
    report = compare(_record(), reference, reference, {"min_f1": 0.97})
    assert not report["passed"]
    assert report["failed"] == ["detection F1 against fp32 at IoU 0.5 not measurable (fp32 finds no box on any sample), and the "
                                "tolerances ['min_f1'] hold no generic gate (min_cosine, min_snr_db, max_range_error) to judge the "
                                "outputs by instead"]


def test_boxes_found_keep_f1_as_the_judge_and_the_generic_gates_out_of_it():
    reference = [{"output0": yolov8_head([[30, 40, 110, 100]], [0], [0.9], seed=1)}]
    converted = [{"output0": reference[0]["output0"] * np.float32(1.02)}]  # scaled: SNR 34 dB, fails fp32's generic gate
    report = compare(_record(), reference, converted, default_tolerances("detect", "fp32"))
    assert report["metrics"]["f1"] == 1.0 and report["metrics"]["reference_boxes"] == 1
    assert report["passed"] and report["judged_by"] == ["detection F1 against fp32 at IoU 0.5"]
    # the rescue's distance to the gates counts what judged: F1, not the unused cosine/SNR
    assert shortfall({**report, "tolerances": default_tolerances("detect", "fp32")}) == 0.0


def test_no_labelled_boxes_is_not_measurable():
    figures = against_labels(_record(), _empty_detector(2), np.zeros((0, 6), np.float32))
    assert figures["f1"] is None and figures["not_measurable"] == "the labels hold no box" and figures["samples"] == 2


def _ctc(ids: list[int], steps: int = 6, classes: int = 4) -> np.ndarray:
    """A [1, T, K] CTC output reading `ids` (blank 0 elsewhere), as one-hot-ish logits."""
    logits = np.full((1, steps, classes), -4.0, np.float32)
    path = [*ids, *[0] * (steps - len(ids))]
    logits[0, np.arange(steps), path] = 4.0
    return logits


def test_character_agreement_over_no_text_is_not_measurable():
    record = validate("ocr-rec", [{"name": "o", "shape": [1, 6, 4]}], ["blank", "a", "b", " "], "m")
    silent = [{"o": _ctc([])}, {"o": _ctc([])}]
    report = compare(record, silent, silent, default_tolerances("ocr-rec", "fp16"))
    assert report["metrics"]["char_agreement"] is None and report["metrics"]["not_measurable"] == "fp32 reads no text on any sample"
    assert report["passed"] and "not measurable" in report["judged_by"][0]
    # a converted model that reads text where fp32 reads none still is not "agreement 0 or 1": the tensors judge
    chatty = [{"o": _ctc([1, 2])}, {"o": _ctc([1])}]
    assert not compare(record, silent, chatty, default_tolerances("ocr-rec", "fp16"))["passed"]
    labelled = against_labels(record, silent, np.array(["", ""]), ["blank", "a", "b", " "])
    assert labelled["char_accuracy"] is None and labelled["not_measurable"] == "the labels hold no text"


def test_character_agreement_with_text_is_measured():
    record = validate("ocr-rec", [{"name": "o", "shape": [1, 6, 4]}], ["blank", "a", "b", " "], "m")
    reference, converted = [{"o": _ctc([1, 2, 1, 2])}], [{"o": _ctc([1, 2, 1])}]
    assert compare(record, reference, converted, default_tolerances("ocr-rec", "fp16"))["metrics"]["char_agreement"] == pytest.approx(0.75)


def test_mean_iou_with_no_foreground_is_not_measurable():
    record = validate("segment", [{"name": "m", "shape": [1, 1, 4, 4]}], None, "m")
    empty = [{"m": np.full((1, 1, 4, 4), 0.1, np.float32)}]
    report = compare(record, empty, empty, default_tolerances("segment", "int8"))
    assert report["metrics"]["mean_iou"] is None and report["metrics"]["not_measurable"] == "fp32's masks have no foreground pixel"
    assert report["passed"]
    half = np.full((1, 1, 4, 4), 0.1, np.float32)
    half[..., :2] = 0.9
    assert compare(record, [{"m": half}], [{"m": half}], default_tolerances("segment", "int8"))["metrics"]["mean_iou"] == 1.0
