from __future__ import annotations

import numpy as np
import pytest

from edgeship.convert.inputs import check_calibration, check_eval, check_eval_labels, load_onnx, onnx_io, parse_input_shapes
from edgeship.errors import EdgeshipError
from tests.support import tiny_cnn


def test_input_shape_parsing():
    assert parse_input_shapes(["input:1,3,224,224", "mask:1,10"]) == {"input": [1, 3, 224, 224], "mask": [1, 10]}
    with pytest.raises(EdgeshipError, match="positive integers"):
        parse_input_shapes(["input:1,0,8"])
    with pytest.raises(EdgeshipError, match="NAME:D0,D1"):
        parse_input_shapes(["1,3,8,8"])


def test_dynamic_dims_are_filled_and_checked(tmp_path):
    model = tiny_cnn(tmp_path / "dyn.onnx", batch="batch")
    proto = load_onnx(model)
    inputs, outputs = onnx_io(model, proto, {"input": [4, 1, 8, 8]})
    assert inputs == [{"name": "input", "shape": [4, 1, 8, 8], "dtype": "float32"}]
    assert outputs[0]["name"] == "logits" and outputs[0]["shape"] == ["?", 4]
    with pytest.raises(EdgeshipError, match=r"does not fit .* keep its rank and fixed dimensions"):
        onnx_io(model, proto, {"input": [1, 3, 8, 8]})


def test_calibration_accepts_samples_with_or_without_batch_axis(tmp_path):
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "a.npy", np.zeros((1, 1, 8, 8), np.float32))
    np.save(tmp_path / "calib" / "b.npy", np.zeros((1, 8, 8), np.float32))
    info = check_calibration(tmp_path / "calib", [{"name": "input", "shape": [1, 1, 8, 8]}])
    assert info["samples"] == 2 and info["files"] == ["a.npy", "b.npy"] and len(info["sha256"]) == 64
    np.save(tmp_path / "calib" / "b.npy", np.ones((1, 8, 8), np.float32))
    assert check_calibration(tmp_path / "calib", [{"name": "input", "shape": [1, 1, 8, 8]}])["sha256"] != info["sha256"]


def test_eval_set_checks_counts_and_shapes(tmp_path):
    spec = [{"name": "input", "shape": [1, 1, 8, 8]}]
    np.savez(tmp_path / "ok.npz", input=np.zeros((5, 1, 8, 8), np.float32), labels=np.arange(5))
    assert check_eval(tmp_path / "ok.npz", spec)["samples"] == 5
    np.savez(tmp_path / "two.npz", input=np.zeros((5, 1, 8, 8), np.float32), other=np.zeros((4, 3), np.float32))
    two = [*spec, {"name": "other", "shape": [1, 3]}]
    with pytest.raises(EdgeshipError, match="different sample counts"):
        check_eval(tmp_path / "two.npz", two)
    # labels are the task's business: a classifier's count, a detector's boxes (any count)
    np.savez(tmp_path / "bad.npz", input=np.zeros((5, 1, 8, 8), np.float32), labels=np.arange(4))
    with pytest.raises(EdgeshipError, match=r"bad\.npz: labels are int64 \[4\] for 5 samples; .*task classify"):
        check_eval_labels(tmp_path / "bad.npz", {"name": "classify", "output": "logits"}, 5)
    np.savez(tmp_path / "boxes.npz", input=np.zeros((2, 1, 8, 8), np.float32),
             labels=np.array([[0, 1, 1, 4, 4, 0], [0, 2, 2, 6, 6, 0], [1, 0, 0, 3, 3, 0]], np.float32))
    samples = check_eval(tmp_path / "boxes.npz", spec)["samples"]
    check_eval_labels(tmp_path / "boxes.npz", {"name": "detect", "decoder": "db", "output": "maps"}, samples)
    np.savez(tmp_path / "shape.npz", input=np.zeros((5, 8, 8), np.float32))
    with pytest.raises(EdgeshipError, match=r"needs \[N, 1, 8, 8\]"):
        check_eval(tmp_path / "shape.npz", spec)
