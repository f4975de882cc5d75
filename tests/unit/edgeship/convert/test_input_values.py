"""Frozen and typed inputs on the host (issue 27, items 2 and 3): what plan() makes of
--input-value and of int/bool inputs before any container starts, the conversions file's
input_values, and the clean-up's cache key. The refusals are in tests/unit/badinput/test_typed_inputs.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from edgeship.convert.clean import clean_key
from edgeship.convert.project import load_project
from edgeship.convert.request import Request, plan
from edgeship.errors import EdgeshipError
from tests.support.typed_models import if_model, image_model


def test_a_frozen_input_leaves_the_plan_inputs_and_is_recorded(tmp_path):
    model = if_model(tmp_path / "if.onnx")
    frozen = plan(Request(target="onnx", model=model, input_values=["mode=1"], out=tmp_path / "out"))
    assert [(spec["name"], spec["shape"], spec["dtype"]) for spec in frozen.inputs] == [("x", [1, 4], "float32")]
    assert frozen.input_values == {"mode": {"dtype": "int64", "shape": [], "value": [1]}}
    # a scalar int64 left unfrozen is carried as int64 where the target feeds it
    unfrozen = plan(Request(target="onnx", model=model, out=tmp_path / "out"))
    assert {spec["name"]: spec["dtype"] for spec in unfrozen.inputs} == {"x": "float32", "mode": "int64"}
    assert unfrozen.input_values == {}


def test_the_cleaned_graph_is_keyed_by_the_frozen_value(tmp_path):
    model = if_model(tmp_path / "if.onnx")
    keys = {value: clean_key(plan(Request(target="onnx", model=model, input_values=[f"mode={value}"], out=tmp_path)), "image")
            for value in (0, 1)}
    assert keys[0] != keys[1]


def test_typed_inputs_are_planned_with_their_dtypes_and_data_checked_by_dtype(tmp_path):
    model = image_model(tmp_path / "image.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "eval.npz", image=rng.integers(0, 256, (3, 3, 8, 8)).astype(np.int64), mask=rng.random((3, 4)) < 0.5)
    planned = plan(Request(target="openvino", model=model, eval=tmp_path / "eval.npz", out=tmp_path / "out"))
    assert {spec["name"]: spec["dtype"] for spec in planned.inputs} == {"image": "uint8", "mask": "bool"}
    # int64 arrays whose values fit uint8 are taken (the worker casts them); one value over is refused
    image = rng.integers(0, 256, (3, 3, 8, 8)).astype(np.int64)
    image[0, 0, 0, 0], image[2, 1, 4, 4] = 0, 256
    np.savez(tmp_path / "eval.npz", image=image, mask=rng.random((3, 4)) < 0.5)
    with pytest.raises(EdgeshipError, match=r"eval\.npz: array 'image' holds 0\.\.256, outside uint8's 0\.\.255; give input 'image' "
                                            r"values it can hold"):
        plan(Request(target="openvino", model=model, eval=tmp_path / "eval.npz", out=tmp_path / "out"))


def _config(folder: Path, values: str) -> Path:
    model = if_model(folder / "if.onnx")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    config = folder / "edgeship.toml"
    config.write_text(f'[models.gate]\npath = "if.onnx"\nsha256 = "{sha}"\ninput_values = {values}\n'
                      '[[matrix]]\nmodels = ["gate"]\ntargets = ["onnx"]\nquants = ["fp32"]\n')
    return config


def test_the_conversions_file_freezes_inputs(tmp_path):
    request = load_project(_config(tmp_path, "{ mode = 1 }")).entries["gate-onnx-fp32"].request(tmp_path / "out")
    assert request.input_values == ["mode=1"]
    assert plan(request).input_values == {"mode": {"dtype": "int64", "shape": [], "value": [1]}}


def test_a_conversions_file_value_that_is_no_number_is_one_line(tmp_path):
    with pytest.raises(EdgeshipError, match=r"edgeship\.toml: \[models\.gate\]: input_values\.mode = 'fast' is not a number, a boolean or "
                                            r"a list of them; write e\.g\. mode = 16000"):
        load_project(_config(tmp_path, '{ mode = "fast" }'))
