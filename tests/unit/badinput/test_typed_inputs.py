"""Bad-input corpus, family `convert`: inputs that are not float32 (issue 27, item 2) and frozen
inputs (item 3), given to `invoke convert`. Each ends in one line naming the value and the fix,
exit 2, no traceback, before any container starts, and nothing is written under --out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.badinput import assert_one_clean_line, invoke_cli
from tests.support.models import tflite_file
from tests.support.typed_models import if_model, image_model, token_model

PREFIX = "edgeship: error: "

# (kind, arguments after `invoke convert`, what the one line must say)
CASES = [
    ("int64 input on rk3588", ["--target", "rk3588", "--model", "{d}/tokens.onnx"],
     r"tokens\.onnx: input 'ids' is int64, but target rk3588 feeds float32 inputs only; convert for onnx, openvino, or freeze the "
     r"input with --input-value ids=VALUE$"),
    ("uint8 input on coral", ["--target", "coral", "--model", "{d}/image.onnx", "--quant", "int8", "--calib", "{d}/image_calib"],
     r"image\.onnx: input 'image' is uint8, but target coral feeds float32 inputs only; convert for onnx, openvino"),
    ("calibration of floats for an int64 input", ["--target", "onnx", "--model", "{d}/tokens.onnx", "--quant", "int8", "--calib", "{d}/float_ids"],
     r"calibration sample .*float_ids/000\.npy: array 'ids' is float32, but input 'ids' is int64 \(integers\); save it as int64 "
     r"\(array\.astype\(numpy\.int64\)\)$"),
    ("eval of ints for a bool input", ["--target", "onnx", "--model", "{d}/image.onnx", "--eval", "{d}/int_mask.npz"],
     r"evaluation set .*int_mask\.npz: array 'mask' is int64, but input 'mask' is bool; save it as bool \(array\.astype\(numpy\.bool_\)\)$"),
    ("eval values outside uint8", ["--target", "openvino", "--model", "{d}/image.onnx", "--eval", "{d}/wide_image.npz"],
     r"evaluation set .*wide_image\.npz: array 'image' holds 0\.\.300, outside uint8's 0\.\.255; give input 'image' values it can hold$"),
    ("--input-value of an unknown input", ["--target", "onnx", "--model", "{d}/if.onnx", "--input-value", "sr=16000"],
     r"if\.onnx: --input-value 'sr=16000' names 'sr', but the model's inputs are \['mode', 'x'\]; use one of those names$"),
    ("--input-value not of the input's dtype", ["--target", "onnx", "--model", "{d}/if.onnx", "--input-value", "mode=fast"],
     r"if\.onnx: --input-value 'mode=fast': 'fast' is not an int64 integer \(input 'mode' is int64\); write its value as one$"),
    ("--input-value of the wrong count", ["--target", "onnx", "--model", "{d}/if.onnx", "--input-value", "mode=1,2"],
     r"if\.onnx: --input-value 'mode=1,2' gives 2 value\(s\), but input 'mode' of shape \[\] holds 1; give 1 comma-separated values$"),
    ("--input-value without a value", ["--target", "onnx", "--model", "{d}/if.onnx", "--input-value", "mode="],
     r"--input-value 'mode=' is not NAME=VALUE\[,VALUE\.\.\.\]; write e\.g\. --input-value sr=16000$"),
    ("--input-value freezing every input", ["--target", "onnx", "--model", "{d}/tokens.onnx", "--input-value", "ids=1,2,3,4,5,6"],
     r"--input-value freezes every input of the model \(ids\); leave at least one input to feed$"),
    ("--input-value on a tflite source", ["--target", "tflite", "--model", "{d}/relu.tflite", "--input-value", "x=1"],
     r"--input-value 'x=1': .*relu\.tflite is a tflite model; inputs are frozen in ONNX sources only, so convert the model's ONNX "
     r"export or drop --input-value$"),
    ("scalar int64 input left unfrozen on rk3588", ["--target", "rk3588", "--model", "{d}/if.onnx"],
     r"if\.onnx: input 'mode' is int64, but target rk3588 feeds float32 inputs only; .*--input-value mode=VALUE$"),
]
KINDS = [("convert", kind) for kind, _, _ in CASES]  # counted by tests/unit/test_bad_input_corpus.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import tflite

    d = tmp_path_factory.mktemp("typed")
    if_model(d / "if.onnx")
    token_model(d / "tokens.onnx")
    image_model(d / "image.onnx")
    tflite_file(d / "relu.tflite", [tflite.BuiltinOperator.RELU])
    (d / "float_ids").mkdir()
    np.save(d / "float_ids" / "000.npy", np.zeros((1, 6), np.float32))
    (d / "image_calib").mkdir()
    np.savez(d / "image_calib" / "000.npz", image=np.zeros((1, 3, 8, 8), np.uint8), mask=np.ones((1, 4), bool))
    np.savez(d / "int_mask.npz", image=np.zeros((2, 3, 8, 8), np.uint8), mask=np.ones((2, 4), np.int64))
    np.savez(d / "wide_image.npz", image=np.linspace(0, 300, 2 * 3 * 8 * 8).astype(np.int64).reshape(2, 3, 8, 8),
             mask=np.ones((2, 4), bool))
    return d


@pytest.mark.parametrize("kind,args,message", CASES, ids=[case[0] for case in CASES])
def test_typed_and_frozen_input_mistakes_are_one_line(folder, kind, args, message):
    out = folder / "out"
    result = invoke_cli("convert", *[arg.format(d=folder) for arg in args], "--out", str(out))
    assert_one_clean_line(result, PREFIX, message)
    assert result.returncode == 2
    assert not out.exists() or not any(out.iterdir())
