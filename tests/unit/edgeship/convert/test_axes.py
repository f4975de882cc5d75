"""Declared batch axes and state pairs (issue 27): read from the model's dimension names, given by
--batch-axis/--state, or none (a sample is the whole shape); eval sets of sequences checked on the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeship.convert.axes import SEQUENCE_KEY, declare, eval_layout, find_state, parse_batch_axes, sample_fits
from edgeship.convert.request import Request, plan
from edgeship.errors import EdgeshipError
from tests.support.stateful_models import tiny_stateful

MODEL = Path("m.onnx")


def _declared(state_dims=(2, "batch", 4), x_dims=("batch", 4)):
    inputs = [{"name": "x", "dims": list(x_dims)}, {"name": "state", "dims": list(state_dims)}]
    outputs = [{"name": "out", "dims": ["batch", 4]}, {"name": "stateN", "dims": list(state_dims)}]
    return inputs, outputs


def _resolved(x=(1, 4), state=(2, 1, 4)):
    return [{"name": "x", "shape": list(x), "dtype": "float32"}, {"name": "state", "shape": list(state), "dtype": "float32"}], \
        [{"name": "out", "shape": ["?", 4]}, {"name": "stateN", "shape": [2, "?", 4]}]


def _axes(specs) -> dict:
    return {spec["name"]: spec["batch_axis"] for spec in specs}


def test_a_dimension_named_batch_is_the_axis_and_outputs_follow_its_name():
    inputs, outputs, state = declare(MODEL, *_declared(), *_resolved(), {}, {})
    assert _axes(inputs) == {"x": 0, "state": 1} and _axes(outputs) == {"out": 0, "stateN": 1}
    assert state == [{"output": "stateN", "input": "state"}]


def test_unnamed_dimensions_take_a_leading_1_as_axis_0_and_else_none():
    inputs, outputs, _ = declare(MODEL, *_declared(state_dims=(2, "?", 4), x_dims=("?", 4)), *_resolved(), {}, {})
    assert _axes(inputs) == {"x": 0, "state": None}
    assert _axes(outputs) == {"out": 0, "stateN": None}  # the state output stacks as its input


def test_static_shapes_without_a_leading_1_assume_no_axis_anywhere():
    inputs, outputs, _ = declare(MODEL, *_declared(state_dims=(2, 3, 4), x_dims=(3, 4)), *_resolved(x=(3, 4), state=(2, 3, 4)), {}, {})
    assert _axes(inputs) == {"x": None, "state": None} and _axes(outputs) == {"out": None, "stateN": None}


def test_the_flag_wins_and_none_is_a_value():
    given = parse_batch_axes(["state:1", "x:none"])
    assert given == {"state": 1, "x": None}
    inputs, _, _ = declare(MODEL, *_declared(state_dims=(2, "?", 4)), *_resolved(), given, {})
    assert _axes(inputs) == {"x": None, "state": 1}


def test_state_pairs_are_found_by_name_and_shape_or_declared():
    inputs = [{"name": "x", "shape": [1, 4]}, {"name": "h0", "shape": [1, 8]}, {"name": "c_in", "shape": [1, 8]}]
    outputs = [{"name": "y", "dims": [1, 4]}, {"name": "hn", "dims": [1, 8]}, {"name": "c_out", "dims": [1, 8]}, {"name": "xN", "dims": [1, 5]}]
    assert find_state(MODEL, inputs, outputs, {}) == [{"output": "hn", "input": "h0"}, {"output": "c_out", "input": "c_in"}]  # xN: not x's shape
    assert find_state(MODEL, inputs, outputs, {"y": "x"}) == [{"output": "y", "input": "x"}]  # declared: only those
    with pytest.raises(EdgeshipError, match=r"more than one output feeds the same input"):
        find_state(MODEL, inputs, outputs, {"hn": "h0", "c_out": "h0"})


def test_a_calibration_sample_may_leave_out_a_batch_of_1_on_axis_0_only():
    assert sample_fits((4,), {"shape": [1, 4], "batch_axis": 0}) and sample_fits((1, 4), {"shape": [1, 4], "batch_axis": 0})
    assert sample_fits((2, 1, 4), {"shape": [2, 1, 4], "batch_axis": None})
    assert not sample_fits((2, 4), {"shape": [2, 1, 4], "batch_axis": 1}) and not sample_fits((4,), {"shape": [1, 4], "batch_axis": None})


def test_an_eval_set_of_sequences_counts_its_steps_and_sequences(tmp_path):
    inputs = [{"name": "x", "shape": [1, 4], "batch_axis": 0}, {"name": "state", "shape": [2, 1, 4], "batch_axis": None}]
    pairs = [{"output": "stateN", "input": "state"}]
    path = tmp_path / "eval.npz"
    np.savez(path, x=np.zeros((7, 4), np.float32), state=np.zeros((2, 2, 1, 4), np.float32), sequence_lengths=np.array([4, 3]))
    shapes = {name: array.shape for name, array in np.load(path).items()}
    assert eval_layout(path, shapes, inputs, pairs) == {"samples": 7, "sequences": [4, 3]}
    open_loop = tmp_path / "steps.npz"  # no sequences: every step holds its own state
    np.savez(open_loop, x=np.zeros((7, 4), np.float32), state=np.zeros((7, 2, 1, 4), np.float32))
    assert eval_layout(open_loop, {name: array.shape for name, array in np.load(open_loop).items()}, inputs, pairs) == {"samples": 7}


def test_sequence_lengths_longer_than_the_steps_are_refused_by_their_header_before_they_are_read(tmp_path):
    inputs = [{"name": "x", "shape": [1, 4], "batch_axis": 0}, {"name": "state", "shape": [2, 1, 4], "batch_axis": None}]
    pairs = [{"output": "stateN", "input": "state"}]
    path = tmp_path / "eval.npz"
    np.savez(path, x=np.zeros((7, 4), np.float32), state=np.zeros((2, 2, 1, 4), np.float32), sequence_lengths=np.ones(8, np.int64))
    shapes = {name: array.shape for name, array in np.load(path).items()}
    with pytest.raises(EdgeshipError, match=r"eval\.npz: sequence_lengths has shape \[8\]; it must be \[S\], one length per sequence, S at most"):
        eval_layout(path, shapes, inputs, pairs)
    shapes[SEQUENCE_KEY] = (2, 1)  # a header of two axes is refused as such, whatever the file holds
    with pytest.raises(EdgeshipError, match=r"sequence_lengths has shape \[2, 1\]; it must be \[S\]"):
        eval_layout(path, shapes, inputs, pairs)


def test_plan_records_the_axes_and_the_state_of_a_real_onnx_model(tmp_path):
    model = tiny_stateful(tmp_path / "tiny.onnx")
    np.savez(tmp_path / "eval.npz", x=np.zeros((5, 4), np.float32), state=np.zeros((2, 2, 4), np.float32), sequence_lengths=np.array([3, 2]))
    p = plan(Request(target="onnx", model=model, eval=tmp_path / "eval.npz", input_shapes=["x:1,4", "state:2,1,4"]))
    assert _axes(p.inputs) == {"x": 0, "state": 1} and _axes(p.outputs) == {"out": 0, "stateN": 1}
    assert p.state == [{"output": "stateN", "input": "state"}]
    assert p.evaluation["samples"] == 5 and p.evaluation["sequences"] == [3, 2]
