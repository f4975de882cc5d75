"""Every user mistake gives one clear line naming the problem and the fix, exit 2, no traceback,
and nothing in the output directory. These checks run on the host before any container."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import run_cli, tiny_cnn


@pytest.fixture
def cases(tmp_path):
    good = tiny_cnn(tmp_path / "good.onnx")
    blob = good.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(blob[: len(blob) // 3])
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    tiny_cnn(tmp_path / "dynamic.onnx", batch="batch")
    (tmp_path / "empty_calib").mkdir()
    (tmp_path / "wrong_calib").mkdir()
    np.save(tmp_path / "wrong_calib" / "000.npy", np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "rgb.json").write_text('{"color": "rgb"}')
    (tmp_path / "broken.json").write_text('{"color": ')
    return tmp_path


BAD = [
    ("missing model", ["--target", "tflite", "--model", "{d}/absent.onnx"], r"model file .*absent\.onnx does not exist; check the --model path"),
    ("truncated onnx", ["--target", "tflite", "--model", "{d}/truncated.onnx"], r"truncated\.onnx is not a readable ONNX model .*re-export"),
    ("random bytes", ["--target", "tflite", "--model", "{d}/random.onnx"], r"random\.onnx is not a (readable|valid) ONNX model .*re-export"),
    ("unknown target", ["--target", "rk9999", "--model", "{d}/good.onnx"], r"unknown target 'rk9999'; choose one of: .*tflite"),
    ("unoffered quant", ["--target", "tflite", "--model", "{d}/good.onnx", "--quant", "int4"],
     r"target tflite does not offer --quant int4; choose one of: fp32, fp16, dynamic, int8"),
    ("empty calibration", ["--target", "tflite", "--model", "{d}/good.onnx", "--quant", "int8", "--calib", "{d}/empty_calib"],
     r"calibration directory .*empty_calib holds no \.npy or \.npz samples; add samples shaped like the model input"),
    ("calibration shape", ["--target", "tflite", "--model", "{d}/good.onnx", "--quant", "int8", "--calib", "{d}/wrong_calib"],
     r"calibration sample .*000\.npy has shape \[1, 3, 8, 8\], but input 'input' needs \[1, 1, 8, 8\]"),
    ("dynamic input", ["--target", "tflite", "--model", "{d}/dynamic.onnx"],
     r"dynamic\.onnx: input 'input' has a dynamic shape \[batch,1,8,8\]; pass --input-shape input:1,1,8,8"),
    ("int8 without calibration", ["--target", "tflite", "--model", "{d}/good.onnx", "--quant", "int8"],
     r"--quant int8 on target tflite needs a calibration set; pass --calib DIR"),
    ("option of another mode", ["--target", "tflite", "--model", "{d}/good.onnx", "--option", "io_dtype=uint8"],
     r"option io_dtype=uint8 only applies to --quant int8"),
    ("unknown option value",
     ["--target", "tflite", "--model", "{d}/good.onnx", "--quant", "int8", "--calib", "{d}/wrong_calib", "--option", "io_dtype=int4"],
     r"option io_dtype='int4' is not offered by target tflite; choose one of: int8, uint8, float32"),
    ("bad input shape", ["--target", "tflite", "--model", "{d}/dynamic.onnx", "--input-shape", "input:1,x"],
     r"--input-shape 'input:1,x' is not NAME:D0,D1,\.\.\."),
    ("missing preprocess", ["--target", "tflite", "--model", "{d}/good.onnx", "--preprocess", "{d}/absent.json"],
     r"preprocess file .*absent\.json does not exist; pass --preprocess FILE\.json such as"),
    ("broken preprocess", ["--target", "tflite", "--model", "{d}/good.onnx", "--preprocess", "{d}/broken.json"],
     r"preprocess file .*broken\.json is not valid JSON .*; write one JSON object"),
    ("preprocess of another input", ["--target", "tflite", "--model", "{d}/good.onnx", "--preprocess", "{d}/rgb.json"],
     r"rgb\.json: preprocess color 'rgb' does not fit input 'input' with 1 channel\(s\); use gray"),
    ("wrong input name", ["--target", "tflite", "--model", "{d}/dynamic.onnx", "--input-shape", "image:1,1,8,8"],
     r"--input-shape names 'image', but .* has inputs \['input'\]"),
]


@pytest.mark.parametrize("label,args,message", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_one_clear_line(cases, label, args, message):
    out = cases / "out"
    result = run_cli("convert", *[a.format(d=cases) for a in args], "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    import re

    assert re.search(message, lines[0]), lines[0]
    assert lines[0].startswith("edgeship: error: ")
    assert not out.exists() or not any(out.iterdir())
