from __future__ import annotations

import numpy as np

from edgeship_runtime.accuracy import compare_output, labelled_accuracy, within_tolerance


def test_identical_outputs_are_perfect():
    reference = [np.array([[0.1, 2.0, -1.0]], np.float32), np.array([[3.0, 0.0, 1.0]], np.float32)]
    figures = compare_output(reference, [r.copy() for r in reference])
    assert abs(figures["cosine_min"] - 1.0) < 1e-12 and figures["max_abs_error"] == 0.0 and figures["top1_agreement"] == 1.0
    assert within_tolerance(figures, {"min_cosine": 0.9999, "min_top1_agreement": 0.99})


def test_a_flipped_prediction_and_drift_are_measured():
    reference = [np.array([[0.0, 1.0]], np.float32), np.array([[1.0, 0.0]], np.float32)]
    converted = [np.array([[0.0, 1.0]], np.float32), np.array([[0.0, 1.0]], np.float32)]
    figures = compare_output(reference, converted)
    assert figures["top1_agreement"] == 0.5
    assert figures["cosine_min"] == 0.0
    assert figures["max_abs_error"] == 1.0
    assert not within_tolerance(figures, {"min_cosine": 0.98, "min_top1_agreement": 0.9})


def test_labelled_accuracy():
    outputs = [np.array([[0.2, 0.8]]), np.array([[0.9, 0.1]]), np.array([[0.4, 0.6]])]
    assert labelled_accuracy(outputs, np.array([1, 0, 0])) == 2 / 3
