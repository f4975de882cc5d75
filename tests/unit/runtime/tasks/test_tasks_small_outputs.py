"""Outputs of one or a few values per sample (a presence score, a handedness flag) are judged by their
largest error relative to the output's range over the eval set, not by cosine (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.tasks import compare, default_tolerances, validate
from edgeship_runtime.tasks.compare import generic_figures, shortfall
from edgeship_runtime.tasks.tolerances import SMALL_OUTPUT_VALUES

OUTPUTS = [{"name": "landmarks", "shape": [1, 63]}, {"name": "score", "shape": [1, 1]}]
SCORES = [0.0, 0.2, 0.5, 0.8]  # fp32 presence scores over the eval set: range 0.8, one exactly 0


def _samples(score_error: float) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(0)
    reference, converted = [], []
    for index, score in enumerate(SCORES):
        landmarks = rng.uniform(0, 224, (1, 63)).astype(np.float32)
        reference.append({"landmarks": landmarks, "score": np.array([[score]], np.float32)})
        # one sample off by score_error; the one at 0 off by 1e-4, which makes its cosine 0 and its SNR -200 dB
        moved = score + (score_error if index == 1 else 1e-4 if score == 0 else 0.0)
        converted.append({"landmarks": landmarks.astype(np.float16).astype(np.float32), "score": np.array([[moved]], np.float32)})
    return reference, converted


def test_a_score_off_by_0_0017_passes_fp16_though_its_cosine_reads_0():
    reference, converted = _samples(0.0017)
    report = compare(validate(None, OUTPUTS, None, "m"), reference, converted, default_tolerances("generic", "fp16"))
    score = report["outputs"]["score"]
    assert score["cosine_min"] == 0.0 and score["values_per_sample"] == 1  # recorded, not gated
    assert score["max_abs_error"] == pytest.approx(0.0017, rel=1e-3)
    assert score["max_abs_error_relative_to_range"] == pytest.approx(0.0017 / 0.8, rel=1e-3)
    assert report["passed"], report["failed"]


def test_a_score_off_by_5_percent_of_its_range_fails_fp16_by_range():
    reference, converted = _samples(0.04)  # 0.04 / 0.8 = 5 % > 1 %
    report = compare(validate(None, OUTPUTS, None, "m"), reference, converted, default_tolerances("generic", "fp16"))
    assert not report["passed"] and len(report["failed"]) == 1
    assert report["failed"][0].startswith("output 'score': max abs error 0.04 is 0.05 of its range > 0.01 (max_range_error;")
    assert shortfall({**report, "tolerances": default_tolerances("generic", "fp16")}) == pytest.approx((0.05 - 0.01) / 0.01, rel=1e-3)


def test_a_constant_output_is_judged_against_its_magnitude_and_an_all_zero_one_exactly():
    constant = [np.array([[0.5]], np.float32)] * 3
    assert generic_figures(constant, [c + np.float32(0.01) for c in constant])["max_abs_error_relative_to_range"] == pytest.approx(0.02)
    zeros = [{"flag": np.zeros((1, 1), np.float32)}] * 2
    record = validate(None, [{"name": "flag", "shape": [1, 1]}], None, "m")
    assert compare(record, zeros, zeros, default_tolerances("generic", "fp32"))["passed"]
    off = compare(record, zeros, [{"flag": np.full((1, 1), 0.001, np.float32)}] * 2, default_tolerances("generic", "fp32"))
    assert not off["passed"] and "fp32 is 0 on every sample" in off["failed"][0]


def test_the_boundary_more_values_than_the_limit_are_judged_by_cosine():
    rng = np.random.default_rng(1)
    for values, judged_by_range in ((SMALL_OUTPUT_VALUES, True), (SMALL_OUTPUT_VALUES + 1, False)):
        reference = [{"y": rng.uniform(1, 2, (1, values)).astype(np.float32)} for _ in range(3)]
        converted = [{"y": r["y"] * np.float32(-1)} for r in reference]  # sign flipped: cosine -1, error twice the value
        report = compare(validate(None, [{"name": "y", "shape": [1, values]}], None, "m"), reference, converted,
                         default_tolerances("generic", "fp16"))
        assert not report["passed"]
        assert ("(max_range_error;" in report["failed"][0]) is judged_by_range and ("(min_cosine)" in report["failed"][0]) is not judged_by_range


def test_tolerances_without_the_range_gate_judge_small_outputs_by_cosine_as_before():
    reference, converted = _samples(0.0017)
    report = compare(validate(None, OUTPUTS, None, "m"), reference, converted, {"min_cosine": 0.999, "min_snr_db": 25.0})
    assert not report["passed"] and report["failed"][0].startswith("output 'score': cosine_min 0 < 0.999")


@pytest.mark.parametrize("task", ["generic", "classify"])
def test_nan_or_inf_from_the_converted_model_never_passes(task):
    """NaN compares false with every limit and max(0.0, nan) is 0.0: an all-NaN small output once passed
    with "max_abs_error 0". A converted value that is not finite where fp32's is fails, named."""
    record = validate({"name": task, "output": "logits"}, [{"name": "logits", "shape": [1, 2]}], None, "unit")
    reference = [{"logits": np.array([[0.3, -1.2]], np.float32)}, {"logits": np.array([[1.5, 0.1]], np.float32)}]
    for bad in (np.nan, np.inf):
        converted = [{"logits": np.array([[bad, bad]], np.float32)}, {"logits": np.array([[1.5, 0.1]], np.float32)}]
        report = compare(record, reference, converted, default_tolerances(task, "fp16"))
        assert not report["passed"] and report["outputs"]["logits"]["non_finite_values"] == 2
        assert any("gives NaN or Inf in 2 value(s) where fp32's are finite" in reason for reason in report["failed"])
    assert compare(record, reference, reference, default_tolerances(task, "fp16"))["passed"]
