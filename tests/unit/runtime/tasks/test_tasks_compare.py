from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import compare, default_tolerances, validate

from .test_tasks_detect import yolov8_head

YOLO_OUTPUTS = [{"name": "output0", "shape": [1, 7, 200]}]


def _detector_samples(seed: int, count: int = 4) -> list[dict]:
    """fp32 outputs of a YOLOv8-style head: a few objects per image among faint candidates."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        corners = rng.uniform(10, 250, (4, 2))
        boxes = [[x, y, x + w, y + h] for (x, y), (w, h) in zip(corners, rng.uniform(30, 80, (4, 2)))]
        samples.append({"output0": yolov8_head(boxes, rng.integers(0, 3, 4).tolist(), rng.uniform(0.5, 0.95, 4).tolist(),
                                               candidates=200, seed=seed + index)})
    return samples


def _has_top1(report: dict) -> bool:
    return "top1_agreement" in report["metrics"] or any("top1_agreement" in figures for figures in report["outputs"].values())


def test_a_detector_through_float16_passes_with_its_generic_figures_reported():
    record = validate({"name": "detect", "decoder": "yolov8"}, YOLO_OUTPUTS, None, "m")
    reference = _detector_samples(0)
    converted = [{"output0": sample["output0"].astype(np.float16).astype(np.float32)} for sample in reference]
    report = compare(record, reference, converted, default_tolerances("detect", "fp16"))
    figures = report["outputs"]["output0"]
    assert figures["cosine_min"] >= 0.999 and figures["snr_db_min"] > 40 and figures["max_abs_error"] > 0
    assert report["metrics"]["f1"] == 1.0 and report["metrics"]["reference_boxes"] == 16
    assert report["passed"] and report["failed"] == [] and report["task"] == "detect"
    assert not _has_top1(report)


def test_int8_like_noise_that_moves_boxes_fails_the_f1_gate_though_cosine_would_pass():
    record = validate({"name": "detect", "decoder": "yolov8"}, YOLO_OUTPUTS, None, "m")
    reference = _detector_samples(1)
    rng = np.random.default_rng(7)
    converted = []
    for sample in reference:
        noisy = sample["output0"].copy()
        noisy[0, :4] += rng.normal(0, 12, noisy[0, :4].shape)  # boxes move by ~12 px: many fall below IoU 0.5
        noisy[0, 4:] += rng.normal(0, 0.01, noisy[0, 4:].shape)
        converted.append({"output0": noisy.astype(np.float32)})
    report = compare(record, reference, converted, default_tolerances("detect", "int8"))
    assert report["outputs"]["output0"]["cosine_min"] >= default_tolerances("generic", "int8")["min_cosine"]
    assert report["metrics"]["f1"] < 0.9 and not report["passed"]
    assert len(report["failed"]) == 1 and "detection F1 against fp32" in report["failed"][0] and "(min_f1)" in report["failed"][0]


def test_a_classifier_keeps_todays_figures_and_gate():
    """Today's accuracy.json for a classifier: worst/mean cosine, abs errors, top-1 agreement over the class
    axis; it passes when cosine_min >= min_cosine and top-1 agreement >= min_top1_agreement."""
    rng = np.random.default_rng(3)
    reference = [{"logits": rng.normal(size=(1, 10)).astype(np.float32)} for _ in range(20)]
    converted = [{"logits": r["logits"] + rng.normal(0, 0.1, (1, 10)).astype(np.float32)} for r in reference]
    refs = np.concatenate([r["logits"] for r in reference]).astype(np.float64)
    outs = np.concatenate([c["logits"] for c in converted]).astype(np.float64)
    cosines = (refs * outs).sum(1) / np.linalg.norm(refs, axis=1) / np.linalg.norm(outs, axis=1)
    errors = np.abs(refs - outs)
    agreement = float(np.mean(refs.argmax(1) == outs.argmax(1)))
    record = validate("classify", [{"name": "logits", "shape": [1, 10]}], None, "m")
    report = compare(record, reference, converted, default_tolerances("classify", "int8"))
    figures = report["outputs"]["logits"]
    assert figures["samples"] == 20 and figures["top1_agreement"] == report["metrics"]["top1_agreement"] == agreement
    assert figures["cosine_min"] == pytest.approx(cosines.min()) and figures["cosine_mean"] == pytest.approx(cosines.mean())
    assert figures["max_abs_error"] == pytest.approx(errors.max()) and figures["mean_abs_error"] == pytest.approx(errors.mean())
    assert figures["max_abs_error_relative_to_range"] == pytest.approx(errors.max() / np.ptp(refs))
    assert 0.9 <= agreement < 0.99 and 0.98 <= cosines.min() < 0.9999  # int8 passes, fp32 does not, on both gates
    assert report["passed"]
    strict = compare(record, reference, converted, default_tolerances("classify", "fp32"))
    assert not strict["passed"] and [reason.split(": ")[1].split(" ")[0] for reason in strict["failed"]] == ["cosine_min", "top-1"]


@pytest.mark.parametrize("record,shape", [({"name": "segment"}, [1, 1, 32, 32]), ({"name": "detect", "decoder": "db"}, [1, 1, 32, 32]),
                                          ("generic", [1, 21, 32, 32])])
def test_a_spatial_map_never_gets_a_top1_figure(record, shape):
    rng = np.random.default_rng(0)
    reference = [{"map": rng.uniform(0, 1, shape).astype(np.float32)} for _ in range(2)]
    converted = [{"map": (r["map"] + 0.01).astype(np.float32)} for r in reference]
    validated = validate(record, [{"name": "map", "shape": shape}], None, "m")
    quant = "int8"
    report = compare(validated, reference, converted, default_tolerances(validated["name"], quant))
    assert not _has_top1(report)
    assert set(report["outputs"]["map"]) >= {"cosine_min", "cosine_mean", "snr_db_min", "max_abs_error", "mean_abs_error"}


def test_generic_gates_every_output_on_cosine_and_snr():
    rng = np.random.default_rng(1)
    reference = [{"a": rng.normal(size=(1, 64)).astype(np.float32), "b": rng.normal(size=(1, 8)).astype(np.float32)} for _ in range(3)]
    # `b` comes out doubled (a wrong output scale): cosine stays 1.0, SNR is 0 dB
    converted = [{"a": r["a"].copy(), "b": r["b"] * 2} for r in reference]
    record = validate(None, [{"name": "a", "shape": [1, 64]}, {"name": "b", "shape": [1, 8]}], None, "m")
    report = compare(record, reference, converted, default_tolerances("generic", "int8"))
    assert report["outputs"]["a"]["snr_db_min"] == 200.0 and report["outputs"]["b"]["cosine_min"] == pytest.approx(1.0)
    assert report["outputs"]["b"]["snr_db_min"] == pytest.approx(0.0, abs=1e-6)
    assert not report["passed"] and report["failed"] == ["output 'b': snr_db_min 0 < 12.0 (min_snr_db)"]


def test_segment_gate_is_the_mean_iou_of_the_thresholded_maps():
    probability = np.zeros((1, 1, 40, 40), np.float32)
    probability[0, 0, 10:30, 10:30] = 0.9
    grown = probability.copy()
    grown[0, 0, 10:30, 30:34] = 0.9  # the mask widens by 4 columns: IoU 400 / 480
    record = validate({"name": "segment"}, [{"name": "mask", "shape": [1, 1, 40, 40]}], None, "m")
    report = compare(record, [{"mask": probability}], [{"mask": grown}], default_tolerances("segment", "int8"))
    assert report["metrics"]["mean_iou"] == pytest.approx(400 / 480) and not report["passed"]
    assert "mean IoU" in report["failed"][0]
    same = compare(record, [{"mask": probability}], [{"mask": probability * 0.99}], default_tolerances("segment", "fp32"))
    assert same["passed"] and same["metrics"]["mean_iou"] == 1.0
    logits = np.random.default_rng(0).normal(size=(1, 4, 16, 16)).astype(np.float32)
    classes = validate({"name": "segment"}, [{"name": "logits", "shape": [1, 4, 16, 16]}], None, "m")
    assert compare(classes, [{"logits": logits}], [{"logits": logits}], default_tolerances("segment", "fp32"))["metrics"]["mean_iou"] == 1.0
    nhwc = validate({"name": "segment", "layout": "NHWC"}, [{"name": "mask", "shape": [1, 40, 40, 1]}], None, "m")
    moved = compare(nhwc, [{"mask": probability.transpose(0, 2, 3, 1)}], [{"mask": grown.transpose(0, 2, 3, 1)}],
                    default_tolerances("segment", "int8"))
    assert moved["metrics"]["mean_iou"] == pytest.approx(400 / 480)  # a one-channel NHWC map is thresholded like NCHW


def test_mismatched_samples_shapes_or_tolerances_are_refused():
    record = validate("classify", [{"name": "logits", "shape": [1, 3]}], None, "m")
    sample = {"logits": np.zeros((1, 3), np.float32)}
    with pytest.raises(ArtifactError, match="converted model has shape \\[1, 4\\]"):
        compare(record, [sample], [{"logits": np.zeros((1, 4), np.float32)}], default_tolerances("classify", "fp32"))
    with pytest.raises(ArtifactError, match="1 reference samples and 2 converted"):
        compare(record, [sample], [sample, sample], default_tolerances("classify", "fp32"))
    with pytest.raises(ArtifactError, match="lack \\['min_top1_agreement'\\]"):
        compare(record, [sample], [sample], {"min_cosine": 0.9})
