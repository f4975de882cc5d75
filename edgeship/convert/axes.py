"""Each input's and output's batch axis, and the state a stateful model feeds back, decided on the
host from the model's declared dimensions and the user's --batch-axis / --state.

The rule (edgeship_runtime.sequence stacks and slices by it):
- `--batch-axis NAME:AXIS` wins;
- else a dimension the model names as a batch ("batch", "batch_size", "N", ...) is the axis;
- else a leading dimension of 1 is axis 0 (a sample is the whole shape either way: stacking on
  a size-1 axis 0 keeps the files every earlier edgeship wrote);
- else none (null): a sample is the whole shape, stacked on a new leading axis.
An output takes the axis of the dimension named as an input's batch, or its state input's axis.

A state pair is an output that feeds an input at the next step: `--state OUTPUT:INPUT`, or found
by name (state/stateN, h/hn, c/cn, x_in/x_out, ...) where the output's declared shape fits the
input's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship.errors import EdgeshipError

SEQUENCE_KEY = "sequence_lengths"  # eval.npz: int [S], the steps of each sequence, in order

BATCH_NAMES = frozenset({"batch", "batch_size", "batchsize", "bs", "n", "b", "nbatch", "num_batch", "batch_dim"})
# an output named <input><suffix> (or an input named <stem><in>, its output <stem><out>) feeds it back
STATE_SUFFIXES = ("N", "n", "_out", "out", "_new", "_next", ".out")
STATE_RENAMES = (("_in", "_out"), ("in", "out"), ("0", "n"), ("_0", "_n"), ("_prev", "_next"), ("_in", "_new"))


def parse_batch_axes(items, flag: str = "--batch-axis") -> dict[str, int | None]:
    """["state:1", "x:none"] -> {"state": 1, "x": None}."""
    axes: dict[str, int | None] = {}
    for item in items or ():
        name, sep, axis = str(item).rpartition(":")
        value: int | None
        if axis.strip().lower() == "none":
            value = None
        elif axis.strip().isascii() and axis.strip().isdecimal():  # not str.isdigit: '²' is a digit int() refuses
            value = int(axis)
        else:
            name = ""
        if not sep or not name:
            raise EdgeshipError(f"{flag} {item!r} is not NAME:AXIS with AXIS a dimension's index or 'none'; write e.g. {flag} state:1")
        axes[name] = value
    return axes


def parse_state(items, flag: str = "--state") -> dict[str, str]:
    """["stateN:state"] -> {"stateN": "state"} (output -> the input it feeds)."""
    pairs: dict[str, str] = {}
    for item in items or ():
        output, sep, feeds = str(item).partition(":")
        if not sep or not output or not feeds or ":" in feeds:
            raise EdgeshipError(f"{flag} {item!r} is not OUTPUT:INPUT (the output whose value feeds that input at the next step); "
                                f"write e.g. {flag} stateN:state")
        pairs[output] = feeds
    return pairs


def _named_batch(dims: list) -> int | None:
    found = [index for index, dim in enumerate(dims) if isinstance(dim, str) and dim.strip().lower() in BATCH_NAMES]
    return found[0] if len(found) == 1 else None


def _is_state_name(output: str, feeds: str) -> bool:
    if any(output == feeds + suffix for suffix in STATE_SUFFIXES):
        return True
    return any(feeds.endswith(old) and output == feeds[: -len(old)] + new for old, new in STATE_RENAMES)


def _fits(declared: list, shape: list[int]) -> bool:
    return len(declared) == len(shape) and all(not isinstance(d, int) or d <= 0 or d == s for d, s in zip(declared, shape))


def find_state(model: Path, inputs: list[dict], declared_outputs: list[dict], given: dict[str, str]) -> list[dict]:
    """The state pairs: the given ones checked, else the ones found by name and shape."""
    by_input = {spec["name"]: spec for spec in inputs}
    by_output = {spec["name"]: spec for spec in declared_outputs}
    for output, feeds in given.items():
        if output not in by_output:
            raise EdgeshipError(f"--state {output}:{feeds}: {model} has no output {output!r} (its outputs: {sorted(by_output)}); "
                                "name one of them")
        if feeds not in by_input:
            raise EdgeshipError(f"--state {output}:{feeds}: {model} has no input {feeds!r} (its inputs: {sorted(by_input)}); "
                                "name one of them")
        if not _fits(by_output[output]["dims"], by_input[feeds]["shape"]):
            raise EdgeshipError(f"--state {output}:{feeds}: output {output!r} of shape {by_output[output]['dims']} cannot feed input "
                                f"{feeds!r} of shape {by_input[feeds]['shape']}; pair an output with the input of its shape")
    if given:
        pairs = given
    else:
        pairs = {output: feeds for output in by_output for feeds in by_input
                 if _is_state_name(output, feeds) and _fits(by_output[output]["dims"], by_input[feeds]["shape"])}
    if len(set(pairs.values())) != len(pairs):
        raise EdgeshipError(f"{model}: more than one output feeds the same input ({pairs}); declare the pairs with --state OUTPUT:INPUT")
    if pairs and len(pairs) == len(inputs):
        raise EdgeshipError(f"{model}: every input would be a state fed back ({pairs}); a model needs an input the data feeds, "
                            "so declare the real pairs with --state OUTPUT:INPUT")
    return [{"output": output, "input": feeds} for output, feeds in pairs.items()]


def declare(model: Path, declared_inputs: list[dict], declared_outputs: list[dict], inputs: list[dict], outputs: list[dict],
            given_axes: dict[str, int | None], given_state: dict[str, str]) -> tuple[list[dict], list[dict], list[dict]]:
    """inputs and outputs with their `batch_axis`, and the state pairs."""
    known = {spec["name"]: spec for spec in inputs}
    for name, axis in given_axes.items():
        if name not in known:
            raise EdgeshipError(f"--batch-axis names {name!r}, but {model} has inputs {sorted(known)}; use one of those names")
        shape = known[name]["shape"]
        if axis is not None and not 0 <= axis < len(shape):
            raise EdgeshipError(f"--batch-axis {name}:{axis} is outside input {name!r} of shape {shape} (axes 0 to {len(shape) - 1}); "
                                f"give the axis the batch is on, or none")
        if axis is not None and shape[axis] != 1:
            raise EdgeshipError(f"--batch-axis {name}:{axis}: input {name!r} has {shape[axis]} there in its shape {shape}; a sample holds "
                                f"a batch of 1, so pass --input-shape with 1 on axis {axis}")
    declared = {item["name"]: item["dims"] for item in declared_inputs}
    batch_symbols: dict[str, int] = {}
    resolved_inputs = []
    for spec in inputs:
        dims = declared.get(spec["name"], [])
        named = _named_batch(dims)
        if spec["name"] in given_axes:
            axis = given_axes[spec["name"]]
        elif named is not None and spec["shape"][named] == 1:
            axis = named
        elif spec["shape"] and spec["shape"][0] == 1:
            axis = 0
        else:
            axis = None
        if axis is not None and axis < len(dims) and isinstance(dims[axis], str) and dims[axis] != "?":
            batch_symbols[dims[axis]] = axis
        resolved_inputs.append({**spec, "batch_axis": axis})
    state = find_state(model, resolved_inputs, declared_outputs, given_state)
    feeds = {pair["output"]: next(s for s in resolved_inputs if s["name"] == pair["input"]) for pair in state}
    declared_out = {item["name"]: item["dims"] for item in declared_outputs}
    resolved_outputs = []
    for spec in outputs:
        dims = declared_out.get(spec["name"], [])
        symbolic = [index for index, dim in enumerate(dims) if isinstance(dim, str) and dim in batch_symbols]
        if spec["name"] in feeds:
            axis = feeds[spec["name"]]["batch_axis"]
        elif symbolic:
            axis = symbolic[0]
        elif resolved_inputs and all(s["batch_axis"] is None for s in resolved_inputs):
            axis = None
        else:
            axis = 0  # as before declared axes: outputs stacked on axis 0
        resolved_outputs.append({**spec, "batch_axis": axis})
    return resolved_inputs, resolved_outputs, state


def axis_text(spec: dict) -> str:
    """How a tensor's samples are stacked, for messages."""
    axis = spec.get("batch_axis", 0)
    return "on a new axis 0" if axis is None else f"on axis {axis}"



def sample_fits(array_shape: tuple, spec: dict) -> bool:
    """A calibration sample is the input's shape; on axis 0, the batch of 1 may be left out (as before)."""
    shape = spec["shape"]
    return list(array_shape) == shape or (spec.get("batch_axis", 0) == 0 and shape[0] == 1 and list(array_shape) == shape[1:])


def _stacked_fits(shape: tuple, spec: dict) -> int | None:
    """The sample count of an array stacked for `spec`, None when it is not stacked that way."""
    from edgeship_runtime.sequence import stacked_shape

    wanted = stacked_shape(spec)
    if len(shape) != len(wanted) or any(w != "samples" and w != s for w, s in zip(wanted, shape)):
        return None
    return int(shape[wanted.index("samples")])


def eval_layout(path: Path, shapes: dict[str, tuple], inputs: list[dict], state: list[dict]) -> dict:
    """The samples (steps) of an eval set, and its sequences when it has `sequence_lengths`: the
    inputs other than the state hold every step in order, each state input one initial value per
    sequence, and the lengths say how many steps each sequence has."""
    from edgeship_runtime.sequence import stacked_shape

    lengths = None
    if SEQUENCE_KEY in shapes:
        if not state:
            raise EdgeshipError(f"evaluation set {path} has {SEQUENCE_KEY}, but the model feeds no state back (no output pairs with an "
                                "input); drop the key, or declare the pair with --state OUTPUT:INPUT")
        # Checked by its header before it is read: one length per sequence, each sequence at least one
        # step, so no valid file holds more lengths than its largest array has rows.
        header, rows = shapes[SEQUENCE_KEY], max((int(shape[0]) for key, shape in shapes.items() if key != SEQUENCE_KEY and shape), default=0)
        if len(header) != 1 or header[0] > rows:
            raise EdgeshipError(f"evaluation set {path}: {SEQUENCE_KEY} has shape {list(header)}; it must be [S], one length per "
                                f"sequence, S at most the {rows} steps the inputs hold")
        with np.load(path) as data:
            raw = data[SEQUENCE_KEY]
        if raw.ndim != 1 or raw.dtype.kind not in "iu" or not len(raw) or (raw <= 0).any():
            raise EdgeshipError(f"evaluation set {path}: {SEQUENCE_KEY} is {raw.dtype} of shape {list(raw.shape)}; it must be positive "
                                "integers [S], the steps of each sequence in order")
        lengths = [int(v) for v in raw]
    carried = {pair["input"] for pair in state} if lengths else set()
    counts: dict[str, int] = {}
    for spec in inputs:
        shape = shapes.get(spec["name"])
        found = None if shape is None else _stacked_fits(shape, spec)
        if found is None:
            wanted = "[" + ", ".join("S" if d == "samples" and spec["name"] in carried else "N" if d == "samples" else str(d)
                                     for d in stacked_shape(spec)) + "]"
            raise EdgeshipError(f"evaluation set {path}: array {spec['name']!r} has shape {list(shape) if shape is not None else 'missing'}, "
                                f"needs {wanted}; stack samples {axis_text(spec)}")
        counts[spec["name"]] = found
    steps = {counts[name] for name in counts if name not in carried}
    if len(steps) != 1 or 0 in steps:
        raise EdgeshipError(f"evaluation set {path}: arrays hold different sample counts {sorted(set(counts.values()))}; "
                            "give every input the same N > 0")
    samples = steps.pop()
    if lengths is not None:
        starts = {counts[name] for name in carried}
        if sum(lengths) != samples or starts != {len(lengths)}:
            raise EdgeshipError(f"evaluation set {path}: {SEQUENCE_KEY} {lengths[:8]}{' ...' if len(lengths) > 8 else ''} sums to "
                                f"{sum(lengths)} over {len(lengths)} sequences, but the inputs hold {samples} steps and the state inputs "
                                f"{sorted(carried)} {sorted(starts)} initial values; give the steps' count and one initial state per sequence")
    return {"samples": samples, **({"sequences": lengths} if lengths is not None else {})}
