"""Samples of a model's tensors, sliced and stacked on each tensor's own batch axis, and state
carried step to step: the one rule the conversion (calibration, eval, references, the rescue)
and the board's check share.

A tensor spec's `batch_axis` says where its samples are stacked:
- an int k: the model takes a batch on axis k, a sample holds 1 there, and samples are
  concatenated on axis k (a state [2, batch, 128] is stacked as [2, N, 128]);
- None: the model names no batch axis and its shapes are static, so a sample is the whole shape
  and samples are stacked on a new leading axis ([N, *shape]);
- absent: axis 0, as every manifest made before declared axes stacked its tensors.

A stateful model's `state` record pairs each output with the input it feeds at the next step
({"output": "stateN", "input": "state"}). Its steps are run in sequences: each sequence starts
from its state inputs' initial values and every later step takes the state the step before it
returned, so the outputs compared are those of a model run as it runs in use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

LEGACY_AXIS = 0


def batch_axis(spec: Mapping) -> int | None:
    """Where a tensor's samples are stacked (see the module's docstring)."""
    return spec.get("batch_axis", LEGACY_AXIS)


def stacked_shape(spec: Mapping) -> list:
    """The shape of a tensor's samples stacked (a name where the count goes), to check files by."""
    shape, axis = list(spec.get("shape") or []), batch_axis(spec)
    if axis is None:
        return ["samples", *shape]
    if axis < len(shape):
        shape[axis] = "samples"
    return shape


def count(array: np.ndarray, spec: Mapping) -> int:
    """How many samples a stacked array holds."""
    axis = batch_axis(spec)
    return int(np.shape(array)[0 if axis is None else axis]) if np.ndim(array) else 0


def take(array: np.ndarray, spec: Mapping, index: int) -> np.ndarray:
    """Sample `index` of a stacked array, shaped as the model takes one."""
    axis = batch_axis(spec)
    if axis is None:
        return np.ascontiguousarray(array[index])
    return np.ascontiguousarray(np.take(array, [index], axis=axis))


def split(arrays: Mapping[str, np.ndarray], specs: Sequence[Mapping]) -> list[dict]:
    """Stacked arrays -> one dict per sample (every spec's array must hold the same count)."""
    if not specs:
        return []
    total = count(arrays[specs[0]["name"]], specs[0])
    return [{spec["name"]: take(arrays[spec["name"]], spec, index) for spec in specs} for index in range(total)]


def stack(samples: Sequence[Mapping[str, np.ndarray]], specs: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """One dict per sample -> stacked arrays, for the specs the samples hold."""
    if not samples:
        return {}
    stacked = {}
    for spec in specs:
        name, axis = spec["name"], batch_axis(spec)
        if name not in samples[0]:
            continue
        values = [np.asarray(sample[name]) for sample in samples]
        stacked[name] = np.stack(values) if axis is None else np.concatenate(values, axis=axis)
    return stacked


def state_inputs(state: Sequence[Mapping] | None) -> list[str]:
    return [pair["input"] for pair in state or ()]


def carry(run: Callable[[dict], dict], steps: Sequence[Mapping[str, np.ndarray]], initial: Sequence[Mapping[str, np.ndarray]],
          lengths: Sequence[int], state: Sequence[Mapping]) -> list[dict]:
    """Run `steps` (the inputs other than the state) as sequences of `lengths`, sequence i starting
    from initial[i] (the state inputs' values) and each later step fed the state outputs of the
    step before; the outputs of every step, in order. The state an output returns keeps the
    dtype and shape of the input it feeds (a backend may hand back a wider float)."""
    if sum(lengths) != len(steps) or len(initial) != len(lengths):
        raise ValueError(f"{len(steps)} steps in {len(initial)} initial states cannot make sequences of lengths {list(lengths)}")
    outputs: list[dict] = []
    position = 0
    for start, length in zip(initial, lengths):
        carried = {name: np.asarray(value) for name, value in start.items()}
        for _ in range(length):
            result = run({**steps[position], **carried})
            outputs.append(result)
            carried = {pair["input"]: np.asarray(result[pair["output"]]).astype(carried[pair["input"]].dtype)
                       .reshape(carried[pair["input"]].shape) for pair in state}
            position += 1
    return outputs


def carry_batched(run: Callable[[list[dict]], list[dict]], steps, initial, lengths, state) -> list[dict]:
    """carry() for a runner that takes a list of samples (the converters' reference and
    run_converted), called one step at a time: each step needs the one before it."""
    return carry(lambda sample: run([sample])[0], steps, initial, lengths, state)


def starts(lengths: Sequence[int]) -> list[int]:
    """The index of each sequence's first step."""
    return [sum(lengths[:index]) for index in range(len(lengths))]


def run_sequences(run: Callable[[list[dict]], list[dict]], samples: Sequence[Mapping[str, np.ndarray]], lengths: Sequence[int] | None,
                  state: Sequence[Mapping]) -> list[dict]:
    """Outputs of `run` over `samples`: carried as sequences of `lengths` (each sequence starts
    from the state its first sample holds; the state later samples hold is not read), or each
    sample on its own without lengths."""
    if not lengths or not state:
        return run([dict(sample) for sample in samples])
    carried = set(state_inputs(state))
    initial = [{name: samples[first][name] for name in carried} for first in starts(lengths)]
    steps = [{name: value for name, value in sample.items() if name not in carried} for sample in samples]
    return carry_batched(run, steps, initial, lengths, state)


def as_fed(samples: Sequence[Mapping[str, np.ndarray]], outputs: Sequence[Mapping[str, np.ndarray]], lengths: Sequence[int],
           state: Sequence[Mapping]) -> list[dict]:
    """The samples as a carried run fed them: every step after a sequence's first holds the state
    the step before returned (the open-loop inputs a per-layer comparison or a rescue reads)."""
    firsts = set(starts(lengths))
    fed = []
    for index, sample in enumerate(samples):
        sample = dict(sample)
        if index not in firsts:
            for pair in state:
                want = np.asarray(sample[pair["input"]])
                sample[pair["input"]] = np.asarray(outputs[index - 1][pair["output"]]).astype(want.dtype).reshape(want.shape)
        fed.append(sample)
    return fed


def whole_sequences(lengths: Sequence[int], limit: int) -> list[int]:
    """The first sequences whose steps fit in `limit` (at least the first one)."""
    kept: list[int] = []
    for length in lengths:
        if kept and sum(kept) + length > limit:
            break
        kept.append(length)
    return kept
