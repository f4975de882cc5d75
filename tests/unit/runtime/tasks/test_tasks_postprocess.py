from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.tasks import postprocess, validate


@pytest.mark.parametrize("scores,probabilities", [
    (np.array([[2.0, -1.0, 0.5, 3.0]], np.float32), np.exp([2.0, -1.0, 0.5, 3.0]) / np.exp([2.0, -1.0, 0.5, 3.0]).sum()),  # logits: softmax
    (np.array([[0.1, 0.2, 0.6, 0.1]], np.float32), np.array([0.1, 0.2, 0.6, 0.1])),  # probabilities already: kept
])
def test_classify_reads_probabilities_or_the_softmax_of_logits(scores, probabilities):
    labels = ["cat", "dog", "bird", "fish"]
    record = validate("classify", [{"name": "logits", "shape": [1, 4]}], labels, "m")
    result = postprocess(record, {"logits": scores}, labels)
    order = np.argsort(-probabilities, kind="stable")[:3]
    assert result["kind"] == "classify" and result["output"] == "logits"
    assert result["class"] == order[0] and result["label"] == labels[order[0]] and result["confidence"] == pytest.approx(probabilities[order[0]])
    assert [(t["class"], t["label"]) for t in result["top"]] == [(int(i), labels[i]) for i in order]
    assert [t["confidence"] for t in result["top"]] == pytest.approx(probabilities[order].tolist())


def test_classify_reads_the_task_output_not_the_first():
    outputs = [{"name": "features", "shape": [1, 16]}, {"name": "probs", "shape": [1, 3]}]
    record = validate({"name": "classify", "output": "probs"}, outputs, None, "m")
    result = postprocess(record, {"features": np.ones((1, 16), np.float32), "probs": np.array([[0.1, 0.7, 0.2]], np.float32)}, None)
    assert result["class"] == 1 and result["label"] == "1" and result["confidence"] == pytest.approx(0.7)


def test_segment_summarizes_the_mask():
    logits = np.zeros((1, 3, 4, 5), np.float32)
    logits[0, 0] = 1.0
    logits[0, 2, :2, :] = 2.0  # 10 of 20 pixels are class 2
    logits[0, 1, 3, :2] = 3.0  # 2 pixels are class 1
    record = validate("segment", [{"name": "out", "shape": [1, 3, 4, 5]}], None, "m")
    result = postprocess(record, {"out": logits}, ["background", "road", "sky"])
    assert result["kind"] == "segment" and result["mask"].shape == (4, 5) and result["mask"].dtype == np.uint8
    assert [(c["label"], c["pixels"]) for c in result["classes"]] == [("sky", 10), ("background", 8), ("road", 2)]
    assert result["label"] == "sky" and result["confidence"] == pytest.approx(0.5)
    nhwc = validate({"name": "segment", "layout": "NHWC"}, [{"name": "out", "shape": [1, 4, 5, 3]}], None, "m")
    assert np.array_equal(postprocess(nhwc, {"out": logits.transpose(0, 2, 3, 1)}, None)["mask"], result["mask"])


def test_generic_lists_the_outputs():
    record = validate(None, [{"name": "y", "shape": [1, 2, 3]}], None, "m")
    assert postprocess(record, {"y": np.zeros((1, 2, 3))}, None)["outputs"] == {"y": [1, 2, 3]}
