"""edgeship_runtime.sequence (issue 27): samples sliced and stacked on each tensor's own batch axis,
and a stateful model's state carried step to step, with known answers on a tiny ONNX model."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime import sequence
from tests.support.stateful_models import step, tiny_stateful

X = {"name": "x", "shape": [1, 4], "batch_axis": 0}
STATE = {"name": "state", "shape": [2, 1, 4], "batch_axis": 1}
WHOLE = {"name": "state", "shape": [2, 1, 4], "batch_axis": None}
PAIRS = [{"output": "stateN", "input": "state"}]


def _samples(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32), "state": rng.standard_normal((2, 1, 4)).astype(np.float32)}
            for _ in range(count)]


@pytest.mark.parametrize("state_spec, stacked_state", [(STATE, (2, 5, 4)), (WHOLE, (5, 2, 1, 4))])
def test_samples_stack_on_their_own_axis_and_split_back(state_spec, stacked_state):
    samples = _samples(5)
    stacked = sequence.stack(samples, [X, state_spec])
    assert stacked["x"].shape == (5, 4) and stacked["state"].shape == stacked_state
    back = sequence.split(stacked, [X, state_spec])
    assert len(back) == 5 and all(np.array_equal(a[name], b[name]) for a, b in zip(samples, back) for name in ("x", "state"))
    assert back[3]["state"].shape == (2, 1, 4)
    assert sequence.count(stacked["state"], state_spec) == 5


def test_a_spec_without_batch_axis_is_axis_0_as_every_older_manifest_stacked():
    legacy = {"name": "x", "shape": [1, 3]}
    assert sequence.batch_axis(legacy) == 0 and sequence.stacked_shape(legacy) == ["samples", 3]
    assert sequence.stacked_shape(WHOLE) == ["samples", 2, 1, 4] and sequence.stacked_shape(STATE) == [2, "samples", 4]
    assert sequence.take(np.arange(6).reshape(3, 2), legacy, 1).tolist() == [[2, 3]]


def test_the_state_is_carried_within_a_sequence_and_starts_anew_at_the_next():
    rng = np.random.default_rng(1)
    steps = [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(5)]
    initial = [{"state": np.zeros((2, 1, 4), np.float32)}, {"state": np.ones((2, 1, 4), np.float32)}]
    outputs = sequence.carry(lambda sample: step(sample["x"], sample["state"]), steps, initial, [3, 2], PAIRS)
    state = np.zeros((2, 1, 4), np.float32)  # by hand: sequence 1 from zeros, sequence 2 from ones
    for index in range(5):
        if index == 3:
            state = np.ones((2, 1, 4), np.float32)
        expected = step(steps[index]["x"], state)
        assert np.allclose(outputs[index]["out"], expected["out"]) and np.allclose(outputs[index]["stateN"], expected["stateN"])
        state = expected["stateN"]


def test_lengths_that_do_not_cover_the_steps_are_refused():
    with pytest.raises(ValueError, match=r"5 steps in 2 initial states cannot make sequences of lengths \[3, 3\]"):
        sequence.carry(lambda s: s, [{}] * 5, [{}, {}], [3, 3], PAIRS)


def test_the_fed_inputs_are_each_step_before_s_state_and_whole_sequences_fit_a_limit():
    samples = [{"x": np.full((1, 4), i, np.float32), "state": np.zeros((2, 1, 4), np.float32)} for i in range(4)]
    outputs = sequence.run_sequences(lambda batch: [step(s["x"], s["state"]) for s in batch], samples, [2, 2], PAIRS)
    fed = sequence.as_fed(samples, outputs, [2, 2], PAIRS)
    assert np.array_equal(fed[0]["state"], samples[0]["state"]) and np.array_equal(fed[2]["state"], samples[2]["state"])
    assert np.allclose(fed[1]["state"], outputs[0]["stateN"]) and np.allclose(fed[3]["state"], outputs[2]["stateN"])
    assert sequence.whole_sequences([3, 4, 2], 8) == [3, 4] and sequence.whole_sequences([9, 1], 4) == [9]
    assert sequence.starts([3, 4, 2]) == [0, 3, 7]


def test_onnx_runtime_carrying_the_tiny_model_gives_the_numpy_answers(tmp_path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tiny_stateful(tmp_path / "tiny.onnx")), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    steps = [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(6)]
    initial = [{"state": np.zeros((2, 1, 4), np.float32)}]
    outputs = sequence.carry_batched(lambda batch: [dict(zip(["out", "stateN"], session.run(None, s))) for s in batch], steps, initial,
                                     [6], PAIRS)
    state = np.zeros((2, 1, 4), np.float32)
    for index, fed in enumerate(steps):
        expected = step(fed["x"], state)
        assert np.allclose(outputs[index]["out"], expected["out"], atol=1e-6)
        state = expected["stateN"]
    # each step alone from a zero state (the state not carried) is another answer from step 2 on
    alone = [dict(zip(["out", "stateN"], session.run(None, {**s, "state": initial[0]["state"]}))) for s in steps]
    assert np.allclose(alone[0]["out"], outputs[0]["out"]) and not np.allclose(alone[2]["out"], outputs[2]["out"])
