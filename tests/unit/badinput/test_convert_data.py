"""Bad-input corpus, family `convert data`: data that lies to `invoke convert` (calibration samples of
NaN, Inf or one value, empty and truncated files, an eval set of NaN or of class ids past the
output's classes, class names that do not fit the output, an input shape whose reference data
cannot fit in memory). Each ends on the host in one line, exit 2, no traceback, before any
container: the unit tier has no Docker, so a case that got as far as a container would fail with
another line. Nothing is written to --out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import tiny_cnn
from tests.support.badinput import assert_one_clean_line, invoke_cli

PREFIX = "edgeship: error: "
INT8 = ["--target", "tflite", "--model", "{d}/tiny.onnx", "--quant", "int8", "--calib"]
FP32 = ["--target", "tflite", "--model", "{d}/tiny.onnx"]


def _real(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 1, 8, 8)).astype(np.float32)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _make(d) -> None:
    tiny_cnn(d / "tiny.onnx", classes=2)
    tiny_cnn(d / "dynamic.onnx", batch="batch", channels=3, classes=2)
    import onnx

    model = onnx.load(str(d / "dynamic.onnx"))
    for axis in (2, 3):  # height and width left to --input-shape
        dim = model.graph.input[0].type.tensor_type.shape.dim[axis]
        dim.Clear()
        dim.dim_param = f"size{axis}"
    onnx.save(model, str(d / "dynamic.onnx"))
    folders = {name: d / name for name in ("nan", "inf", "constant", "empty", "truncated_npy", "truncated_npz", "header_only")}
    for folder in folders.values():
        folder.mkdir()
        for index, sample in enumerate(_real(3)):
            np.save(folder / f"{index:03d}.npy", sample)
    bad = _real(1, seed=5)[0]
    bad[0, 2, 3] = np.nan
    np.save(folders["nan"] / "003.npy", bad)
    np.save(folders["inf"] / "001.npy", np.where(_real(1)[0] > 1, np.inf, 0.5).astype(np.float32))
    np.save(folders["constant"] / "002.npy", np.full((1, 1, 8, 8), 0.5, np.float32))
    (folders["empty"] / "001.npy").write_bytes(b"")
    (folders["truncated_npy"] / "001.npy").write_bytes(_npy_bytes(_real(1)[0])[:200])
    (folders["header_only"] / "001.npy").write_bytes(_npy_bytes(_real(1)[0])[:100])
    np.savez(folders["truncated_npz"] / "003.npz", input=_real(1)[0])
    whole = (folders["truncated_npz"] / "003.npz").read_bytes()
    (folders["truncated_npz"] / "003.npz").write_bytes(whole[: len(whole) // 2])
    labels = np.array([0, 1, 1, 0])
    evaluation = _real(4, seed=2)
    evaluation[2] = np.nan
    np.savez(d / "eval_nan.npz", input=evaluation, labels=labels)
    evaluation = _real(4, seed=3)
    evaluation[1] = 0.0
    np.savez(d / "eval_constant.npz", input=evaluation, labels=labels)
    (d / "eval_empty.npz").write_bytes(b"")
    np.savez(d / "eval_whole.npz", input=_real(4, seed=4), labels=labels)
    whole = (d / "eval_whole.npz").read_bytes()
    (d / "eval_truncated.npz").write_bytes(whole[: len(whole) - 40])
    np.savez(d / "eval_class_5.npz", input=_real(4, seed=6), labels=np.array([0, 1, 5, 1]))
    (d / "three.txt").write_text("cat\ndog\nbird\n")
    (d / "one.json").write_text('["cat"]')


# (kind, convert arguments, what the one line must say)
CASES = [
    ("calibration sample with a NaN", [*INT8, "{d}/nan"],
     r"calibration sample .*nan/003\.npy holds NaN or Inf \(1 of 64 values\); replace it with a real input or delete the file$"),
    ("calibration sample with Inf", [*INT8, "{d}/inf"], r"calibration sample .*inf/001\.npy holds NaN or Inf \(\d+ of 64 values\)"),
    ("constant calibration sample", [*INT8, "{d}/constant"],
     r"calibration sample .*constant/002\.npy is constant \(every value 0\.5\): a quantizer learns no range from it; replace it"),
    ("empty .npy", [*INT8, "{d}/empty"], r"calibration sample .*empty/001\.npy is empty \(0 bytes\); save it again with numpy\.save$"),
    ("truncated .npy", [*INT8, "{d}/truncated_npy"],
     r"calibration sample .*truncated_npy/001\.npy is truncated: its header says \[1, 8, 8\] float32 \(256 bytes\), the file holds "
     r"\d+ bytes of data; save it again with numpy\.save$"),
    ("truncated .npy header", [*INT8, "{d}/header_only"],
     r"calibration sample .*header_only/001\.npy is not a readable \.npy file \(.*\); save it with numpy\.save$"),
    ("truncated .npz", [*INT8, "{d}/truncated_npz"],
     r"calibration sample .*truncated_npz/003\.npz is not a readable \.npz \(BadZipFile: .*\); save it with numpy\.savez$"),
    ("eval set with NaN", [*FP32, "--eval", "{d}/eval_nan.npz"],
     r"evaluation set .*eval_nan\.npz: array 'input' at index 2 of axis 0 holds NaN or Inf \(64 of 64 values\); fix or drop that sample"),
    ("constant eval sample", [*FP32, "--eval", "{d}/eval_constant.npz"],
     r"evaluation set .*eval_constant\.npz: sample 1 \(axis 0\) is constant \('input' all 0\.0\)"),
    ("empty eval set", [*FP32, "--eval", "{d}/eval_empty.npz"],
     r"evaluation set .*eval_empty\.npz is empty \(0 bytes\); save it again with numpy\.savez$"),
    ("truncated eval set", [*FP32, "--eval", "{d}/eval_truncated.npz"], r"evaluation set .*eval_truncated\.npz is not a readable \.npz"),
    ("labels one too many", [*FP32, "--labels", "{d}/three.txt"],
     r"labels file .*three\.txt names 3 classes, but output 'logits' of shape \[1, 2\] scores 2 \(its last axis\); give one name per class"),
    ("labels one too few", [*FP32, "--labels", "{d}/one.json", "--task", "classify"],
     r"labels file .*one\.json names 1 classes, but output 'logits' of shape \[1, 2\] scores 2"),
    ("eval class id past the output's classes", [*FP32, "--eval", "{d}/eval_class_5.npz"],
     r"evaluation set .*eval_class_5\.npz: labels hold class 5 \(sample 2\), but output 'logits' scores 2 classes \(ids 0-1\); label each "
     r"sample with its class id"),
    ("input shape too big for memory", ["--target", "tflite", "--model", "{d}/dynamic.onnx", "--input-shape", "input:1,3,100000,100000"],
     r"dynamic\.onnx: input 'input' of shape \[1, 3, 100000, 100000\] is 120 GB per sample; the reference data would take 960 GB "
     r"\(inputs and outputs of 8 seeded random samples, as neither --eval nor --calib is given\), over the conversion container's "
     r"memory limit EDGESHIP_CONTAINER_MEMORY=16g \(17\.2 GB\); convert with a smaller --input-shape$"),
]
KINDS = [("convert data", kind) for kind, _, _ in CASES]  # counted by tests/unit/test_bad_input_corpus.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    _make(d)
    return d


@pytest.mark.parametrize(("kind", "args", "pattern"), CASES, ids=[case[0] for case in CASES])
def test_data_that_lies_is_one_line_before_any_container(folder, kind, args, pattern):
    out = folder / f"out-{kind.replace(' ', '-')}"
    result = invoke_cli("convert", *[arg.format(d=folder) for arg in args], "--out", str(out),
                        env={"EDGESHIP_CONTAINER_MEMORY": "16g"})
    assert result.returncode == 2, result.stderr
    assert_one_clean_line(result, PREFIX, pattern)
    assert "converting" not in result.stdout and "graph clean-up" not in result.stdout  # refused before any container
    assert not out.exists() or not any(out.iterdir())


def test_the_same_data_with_the_lie_removed_passes_the_plan(folder, tmp_path):
    """The cases fail for the lie, not for something else in the fixture: the good samples plan."""
    from pathlib import Path

    from edgeship.convert.request import Request, plan

    calib = tmp_path / "calib"
    calib.mkdir()
    for name in ("000.npy", "001.npy", "002.npy"):
        (calib / name).write_bytes((folder / "nan" / name).read_bytes())
    p = plan(Request(target="tflite", model=Path(folder / "tiny.onnx"), quant="int8", calib=calib, eval=folder / "eval_whole.npz",
                     out=tmp_path / "out"))
    assert p.calibration and p.calibration["samples"] == 3 and p.evaluation and p.evaluation["samples"] == 4
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    assert plan(Request(target="tflite", model=folder / "tiny.onnx", labels=tmp_path / "two.txt", out=tmp_path / "out")).labels == ["cat", "dog"]
    assert plan(Request(target="tflite", model=folder / "dynamic.onnx", input_shapes=["input:1,3,224,224"], out=tmp_path / "out")).inputs
