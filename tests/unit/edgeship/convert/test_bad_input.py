"""Every user mistake gives one clear line naming the problem and the fix, exit 2, no traceback,
and nothing in the output directory. These checks run on the host before any container."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import run_cli, tiny_cnn
from tests.support.models import external_model, onnx_file, tflite_file


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
    from onnx import helper

    relu = [helper.make_node("Relu", ["x"], ["y"])]
    onnx_file(tmp_path / "custom.onnx", [helper.make_node("FancyNorm", ["x"], ["y"], domain="com.example")], domains=["com.example"])
    onnx_file(tmp_path / "opset6.onnx", relu, opset=6)
    onnx_file(tmp_path / "opset21.onnx", relu, opset=21)
    (tmp_path / "external").mkdir()
    external_model(tmp_path / "external")
    (tmp_path / "external" / "ext.weights").unlink()
    import tflite

    tflite_file(tmp_path / "selfie.tflite", [tflite.BuiltinOperator.RELU, "Convolution2DTransposeBias", "MaxPoolingWithArgmax2D"])
    tflite_file(tmp_path / "relu.tflite", [tflite.BuiltinOperator.RELU])
    np.savez(tmp_path / "texts.npz", input=np.zeros((3, 1, 8, 8), np.float32), labels=np.array(["EXIT", "12", "kWh"]))
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
    ("custom-domain op", ["--target", "tflite", "--model", "{d}/custom.onnx"],
     r"custom\.onnx: target tflite cannot run operators from custom domains: FancyNorm \(domain 'com\.example', 1 node\); re-export"),
    ("tflite custom op", ["--target", "rk3588", "--model", "{d}/selfie.tflite"],
     r"selfie\.tflite: target rk3588's toolchain has no kernel for custom op 'MaxPoolingWithArgmax2D' \(1 node\)"),
    ("tflite source re-quantized", ["--target", "tflite", "--model", "{d}/relu.tflite", "--quant", "int8", "--calib", "{d}/wrong_calib"],
     r"relu\.tflite: a tflite source converts to --quant fp32 or fp16 on target tflite, not int8 \(a compiled tflite file is not "
     r"re-quantized\); convert the model's ONNX, SavedModel or Keras source for int8"),
    ("missing external data", ["--target", "onnx", "--model", "{d}/external/ext.onnx"],
     r"ext\.onnx: tensor 'dense\.weight' keeps its data in .*ext\.weights, which does not exist"),
    ("opset too old", ["--target", "tflite", "--model", "{d}/opset6.onnx"],
     r"opset6\.onnx: opset 6 is older than target tflite reads \(opsets 11-23\); convert it with onnx\.version_converter"),
    ("opset too new", ["--target", "jetson", "--model", "{d}/opset21.onnx"],
     r"opset21\.onnx: opset 21 is newer than target jetson reads \(opsets 9-20\); re-export with opset_version=20"),
    ("mean of another channel count", ["--target", "rk3588", "--model", "{d}/good.onnx", "--option", "mean=1,2"],
     r"good\.onnx: option mean has 2 values but input 'input' has 1 channels; give 1 or 1 \(target rk3588\)"),
    ("edge tpu batch", ["--target", "coral", "--model", "{d}/dynamic.onnx", "--input-shape", "input:2,1,8,8", "--quant", "int8",
                        "--calib", "{d}/wrong_calib"],
     r"dynamic\.onnx: input 'input' has shape \[2, 1, 8, 8\]: the Edge TPU runs batch 1 only; convert with --input-shape input:1,1,8,8"),
    ("mcu board not in the table", ["--target", "mcu", "--model", "{d}/good.onnx", "--calib", "{d}/wrong_calib", "--option", "board=stm32f999"],
     r"option board='stm32f999' is not offered by target mcu; choose one of: stm32h747, stm32f746, stm32l4r9"),
    ("mcu float mode", ["--target", "mcu", "--model", "{d}/good.onnx", "--quant", "fp16"],
     r"target mcu does not offer --quant fp16; choose one of: int8"),
    ("labels that do not fit the task", ["--target", "onnx", "--model", "{d}/good.onnx", "--eval", "{d}/texts.npz", "--task", "classify"],
     r"texts\.npz: labels are <U4 \[3\]; .*task classify"),
]


KINDS = [("convert", label) for label, _, _ in BAD]  # counted by tests/unit/test_bad_input_corpus.py


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
