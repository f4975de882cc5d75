"""targets/freeze.py: --input-value text checked against the declared input, and the input made a
constant initializer of the ONNX model (the folding itself is onnxsim's, proven in the onnx image
by tests/container/convert/test_typed_inputs.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from targets.freeze import FreezeError, freeze, parse
from tests.support.typed_models import ELSE_SCALE, THEN_SCALE, if_model

DECLARED = [{"name": "x", "dims": [1, 4], "dtype": "float32"}, {"name": "mode", "dims": [], "dtype": "int64"},
            {"name": "flags", "dims": [1, 3], "dtype": "bool"}, {"name": "pixel", "dims": [1], "dtype": "uint8"},
            {"name": "ids", "dims": ["batch", 2], "dtype": "int32"}, {"name": "audio", "dims": [1, 512], "dtype": "float32"}]


def test_values_parse_by_dtype_and_fill_the_shape():
    frozen = parse(["mode=16000", "flags=true,0,False", "pixel=255", "x=0.5,-1,2e3,0", "ids=-3,7"], DECLARED, {"ids": [1, 2]})
    assert frozen == {"mode": {"dtype": "int64", "shape": [], "value": [16000]},
                      "flags": {"dtype": "bool", "shape": [1, 3], "value": [True, False, False]},
                      "pixel": {"dtype": "uint8", "shape": [1], "value": [255]},
                      "x": {"dtype": "float32", "shape": [1, 4], "value": [0.5, -1.0, 2000.0, 0.0]},
                      "ids": {"dtype": "int32", "shape": [1, 2], "value": [-3, 7]}}
    assert parse([], DECLARED, {}) == {}


@pytest.mark.parametrize("items,shapes,message", [
    (["mode"], {}, r"--input-value 'mode' is not NAME=VALUE\[,VALUE\.\.\.\]; write e\.g\. --input-value sr=16000"),
    (["rate=1"], {}, r"names 'rate', but the model's inputs are \['audio', 'flags', 'ids', 'mode', 'pixel', 'x'\]"),
    (["mode=1", "mode=2"], {}, r"gives input 'mode' twice"),
    (["mode=1.5"], {}, r"'1\.5' is not an int64 integer \(input 'mode' is int64\)"),
    (["pixel=256"], {}, r"'256' is not an integer 0\.\.255"),
    (["flags=yes,1,0"], {}, r"'yes' is not true, false, 1 or 0"),
    (["x=nan,1,2,3"], {}, r"'nan' is not a float32 number"),
    (["x=1,2"], {}, r"gives 2 value\(s\), but input 'x' of shape \[1, 4\] holds 4; give 4 comma-separated values"),
    (["ids=1,2"], {}, r"input 'ids' has a dynamic shape \['batch', 2\]; also pass --input-shape ids:1,2"),
    (["ids=1,2"], {"ids": [1, 3]}, r"--input-shape ids:1,3 does not fit input 'ids'"),
])
def test_a_value_the_input_cannot_take_is_one_line(items, shapes, message):
    with pytest.raises(FreezeError, match=message):
        parse(items, DECLARED, shapes)


def test_freezing_every_input_is_refused():
    with pytest.raises(FreezeError, match=r"freezes every input of the model \(mode, x\); leave at least one input to feed"):
        parse(["mode=1", "x=1,2,3,4"], DECLARED[:2], {})


@pytest.mark.parametrize("mode,scale", [(1, THEN_SCALE), (0, ELSE_SCALE)])
def test_a_frozen_input_is_a_constant_and_the_model_runs_without_it(tmp_path, mode, scale):
    import onnxruntime

    model = onnx.load(str(if_model(tmp_path / "if.onnx")))
    freeze(model, parse([f"mode={mode}"], [{"name": "mode", "dims": [], "dtype": "int64"}, {"name": "x", "dims": [1, 4]}], {}))
    assert [value.name for value in model.graph.input] == ["x"]
    onnx.checker.check_model(model, full_check=True)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)
    np.testing.assert_array_equal(session.run(["y"], {"x": x})[0], x * np.float32(scale))


def test_freezing_a_name_the_model_lacks_fails(tmp_path):
    model = onnx.load(str(if_model(tmp_path / "if.onnx")))
    with pytest.raises(ValueError, match=r"input_values names 'rate', which is not an input of the model \(inputs: \['x', 'mode'\]\)"):
        freeze(model, {"rate": {"dtype": "int64", "shape": [], "value": [1]}})
