"""frame-decisions (issue 27): a sequence model's per-step decisions at a threshold, against fp32's and labels,
on hand-made scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import against_labels, compare, default_tolerances, get, postprocess, validate

OUTPUTS = [{"name": "output", "shape": [1, 1]}, {"name": "stateN", "shape": [2, 1, 128]}]


def _steps(values) -> list[dict]:
    return [{"output": np.array([[v]], np.float32), "stateN": np.full((2, 1, 128), v, np.float32)} for v in values]


def _record(**extra) -> dict:
    return validate({"name": "frame-decisions", **extra}, OUTPUTS, None, "m")


FP32 = [0.1, 0.2, 0.9, 0.95, 0.8, 0.7, 0.3, 0.1, 0.05, 0.6]  # active at steps 2-5 and 9


def test_one_flipped_frame_of_ten_is_agreement_0_9_and_its_f1():
    converted = list(FP32)
    converted[5] = 0.4  # an active frame lost: 4 of fp32's 5 found, none extra
    report = compare(_record(), _steps(FP32), _steps(converted), default_tolerances("frame-decisions", "int8"))
    metrics = report["metrics"]
    assert metrics["frame_agreement"] == pytest.approx(0.9)
    assert metrics["active_recall"] == pytest.approx(0.8) and metrics["active_precision"] == 1.0
    assert metrics["active_f1"] == pytest.approx(2 * 0.8 / 1.8)
    assert metrics["active"] == 5 and metrics["found_active"] == 4 and metrics["frames"] == 10
    assert report["passed"]  # int8: agreement 0.90 and F1 0.89 meet 0.90 and 0.85
    fp16 = compare(_record(), _steps(FP32), _steps(converted), default_tolerances("frame-decisions", "fp16"))
    assert not fp16["passed"] and any("min_frame_agreement" in reason for reason in fp16["failed"])


def test_the_threshold_decides_and_scores_equal_to_it_are_quiet():
    record = _record(threshold=0.75)
    converted = [0.1, 0.2, 0.9, 0.95, 0.8, 0.75, 0.3, 0.1, 0.05, 0.6]  # 0.75 is not above 0.75: as fp32's 0.7, quiet
    metrics = compare(record, _steps(FP32), _steps(converted), default_tolerances("frame-decisions", "fp32"))["metrics"]
    assert metrics["active"] == 3 and metrics["frame_agreement"] == 1.0 and metrics["active_f1"] == 1.0


def test_an_extra_active_frame_costs_precision():
    converted = list(FP32)
    converted[0] = 0.55
    metrics = compare(_record(), _steps(FP32), _steps(converted), default_tolerances("frame-decisions", "fp32"))["metrics"]
    assert metrics["active_precision"] == pytest.approx(5 / 6) and metrics["active_recall"] == 1.0


def test_fp32_deciding_nothing_is_not_measurable_and_the_tensors_judge():
    quiet = [0.1, 0.2, 0.05, 0.3]
    report = compare(_record(), _steps(quiet), _steps(quiet), default_tolerances("frame-decisions", "fp16"))
    assert report["metrics"]["frame_agreement"] is None and report["metrics"]["active_f1"] is None
    assert report["metrics"]["not_measurable"] == "fp32 marks no frame active"
    assert report["passed"] and "instead" in report["judged_by"][0]
    broken = compare(_record(), _steps(quiet), _steps([0.9, 0.0, 0.7, 0.1]), default_tolerances("frame-decisions", "fp16"))
    assert not broken["passed"]


def test_labels_are_frame_decisions_and_other_labels_are_refused():
    labels = np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    figures = against_labels(_record(), _steps(FP32), labels)
    assert figures["frame_agreement"] == pytest.approx(0.9) and figures["active_recall"] == 1.0 and figures["samples"] == 10
    with pytest.raises(ArtifactError, match=r"labels are int64 \[10, 2\] for 10 steps; task 'frame-decisions' takes integer frame decisions"):
        get("frame-decisions").check_labels(_record(), np.zeros((10, 2), np.int64), 10, "m")
    with pytest.raises(ArtifactError, match=r"takes integer frame decisions \[N\] \(1 active, 0 not\)"):
        get("frame-decisions").check_labels(_record(), np.full(10, 2), 10, "m")


def test_an_output_with_more_than_one_score_per_step_is_refused():
    with pytest.raises(ArtifactError, match=r"m: task 'frame-decisions' reads output 'stateN' of shape \[2, 1, 128\]; "
                                            r"frame-decisions needs one score per step"):
        validate({"name": "frame-decisions", "output": "stateN"}, OUTPUTS, None, "m")


def test_postprocess_says_active_or_quiet():
    record = _record()
    assert postprocess(record, {"output": np.array([[0.8]], np.float32)}, None)["label"] == "active"
    quiet = postprocess(record, {"output": np.array([[0.2]], np.float32)}, None)
    assert quiet["label"] == "quiet" and quiet["confidence"] == pytest.approx(0.8)
