"""Frozen inputs (`--input-value NAME=VALUE[,VALUE...]`): an ONNX graph input replaced by a
constant initializer before the graph clean-up folds constants, so the folding removes what the
value decides. onnx-simplifier 0.4.36 (the onnx image's) folds an `If` whose condition is then
constant into the taken branch's nodes: measured on a scalar int64 `mode` -> Equal -> If model,
which folds to the one Mul of the branch taken. It stops on Ifs whose branches read outer names
through nested Ifs (silero-vad's `sr`), so the clean-up first inlines every decided If itself
(targets/fold_if.py).

`parse` runs on the controller (the text is checked against the declared input before any
container starts) and gives a JSON record; `freeze` runs in the image on the loaded model.
Standard library and numpy only at module level.
"""

from __future__ import annotations

import math

import numpy as np

# ONNX TensorProto element types of the input dtypes edgeship carries, by numpy name.
ONNX_DTYPES = {1: "float32", 2: "uint8", 6: "int32", 7: "int64", 9: "bool"}
_KIND = {"float32": "a float32 number", "uint8": "an integer 0..255", "int32": "an int32 integer", "int64": "an int64 integer",
         "bool": "true, false, 1 or 0"}


class FreezeError(ValueError):
    """A --input-value the model's input cannot take; one line naming the value and the fix."""


def _scalar(text: str, dtype: str) -> bool | int | float:
    """One value as a JSON scalar of the input's dtype; ValueError when it does not parse or fit."""
    text = text.strip()
    if dtype == "bool":
        truth = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
        if truth is None:
            raise ValueError(text)
        return truth
    if dtype == "float32":
        number = float(text)
        if not math.isfinite(number) or abs(number) > float(np.finfo(np.float32).max):
            raise ValueError(text)
        return number
    integer = int(text, 10)
    info = np.iinfo(np.dtype(dtype))
    if not info.min <= integer <= info.max:
        raise ValueError(text)
    return integer


def _shape(spec: dict, given: list[int] | None, where: str, item: str) -> list[int]:
    dims = spec["dims"]
    if given is not None:
        if len(given) != len(dims) or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(dims, given)):
            raise FreezeError(f"--input-shape {spec['name']}:{','.join(map(str, given))} does not fit input {spec['name']!r} of shape "
                              f"{dims}; keep its rank and fixed dimensions")
        return list(given)
    if any(not (isinstance(d, int) and d > 0) for d in dims):
        example = ",".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in dims)
        raise FreezeError(f"{where} {item!r}: input {spec['name']!r} has a dynamic shape {dims}; also pass --input-shape "
                          f"{spec['name']}:{example} (the shape of the value)")
    return [int(d) for d in dims]


def parse(items, declared: list[dict], input_shapes: dict[str, list[int]], where: str = "--input-value") -> dict[str, dict]:
    """["mode=1", "w=0.5,0.25"] -> {"mode": {"dtype": "int64", "shape": [], "value": [1]}, ...}.

    `declared`: the model's inputs as `{"name", "dims", "dtype"}` (dims: ints, or names/None for
    dynamic ones, which `input_shapes` must fix). The values fill the shape in C order."""
    known = {spec["name"]: spec for spec in declared}
    frozen: dict[str, dict] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise FreezeError(f"{where} {item!r} is not NAME=VALUE[,VALUE...]; write e.g. {where} sr=16000")
        if name not in known:
            raise FreezeError(f"{where} {item!r} names {name!r}, but the model's inputs are {sorted(known)}; use one of those names")
        if name in frozen:
            raise FreezeError(f"{where} gives input {name!r} twice; give each input one value")
        spec = known[name]
        dtype = spec.get("dtype")
        if dtype not in _KIND:
            raise FreezeError(f"{where} {item!r}: input {name!r} is of type {spec.get('dtype_code', dtype)}, which edgeship cannot write a "
                              f"constant of (it writes {', '.join(_KIND)}); re-export the model with that value built in")
        shape = _shape(spec, input_shapes.get(name), where, item)
        values = []
        for part in text.split(","):
            try:
                values.append(_scalar(part, dtype))
            except ValueError:
                raise FreezeError(f"{where} {item!r}: {part.strip()!r} is not {_KIND[dtype]} (input {name!r} is {dtype}); "
                                  f"write its value as one") from None
        count = math.prod(shape)
        if len(values) != count:
            raise FreezeError(f"{where} {item!r} gives {len(values)} value(s), but input {name!r} of shape {shape} holds {count}; "
                              f"give {count} comma-separated values")
        frozen[name] = {"dtype": dtype, "shape": shape, "value": values}
    if frozen and len(frozen) == len(known):
        raise FreezeError(f"{where} freezes every input of the model ({', '.join(sorted(frozen))}); leave at least one input to feed")
    return frozen


def feeds(frozen: dict[str, dict]) -> dict[str, np.ndarray]:
    """The frozen inputs' values as arrays: what the source model, which still takes them, is fed."""
    return {name: np.array(record["value"], dtype=np.dtype(record["dtype"])).reshape(record["shape"]) for name, record in frozen.items()}


def freeze(model, frozen: dict[str, dict]) -> None:
    """Replace each frozen graph input of the ONNX model by an initializer of its value, in place."""
    from onnx import numpy_helper

    initializers = {init.name for init in model.graph.initializer}
    values = feeds(frozen)
    for name in frozen:
        found = [value for value in model.graph.input if value.name == name and name not in initializers]
        if not found:
            raise ValueError(f"input_values names {name!r}, which is not an input of the model "
                             f"(inputs: {[value.name for value in model.graph.input if value.name not in initializers]})")
        model.graph.input.remove(found[0])
        model.graph.initializer.append(numpy_helper.from_array(values[name], name))
