"""Float-graph rewrites before ONNX Runtime's static quantizer, so the int8 model is faster than fp32.

Measured on PP-OCRv4 rec (PP-LCNetV3, ONNX Runtime, one thread, AVX-512 VNNI): QLinearConv ran
3.6x faster than the fp32 Conv, yet the model was only 0.77x fp32, because the quantizer gives
every elementwise op its own int8 kernel with a requantization (QLinearMul/QLinearAdd, 0.1 ms
each on 480x640 maps) or a DequantizeLinear/QuantizeLinear pair around a float op (Div, Clip).
The float graph holds two patterns that make most of them, and both go away exactly:

- `fold_conv_affine`: Conv -> Mul(constant) -> Add(constant), a per-tensor or per-channel affine
  (PP-LCNetV3's "learnable affine block"), folded into the Conv's weights and bias;
- `fold_affine_into_next_conv`: the same affine after an activation, folded into the unpadded
  one-group Conv that reads it (the pointwise Conv after each HardSwish);
- `fuse_hard_swish`: x * Clip(x + 3, 0, 6) / 6 (as exported by Paddle and PyTorch) becomes one
  HardSwish (opset 14), whose QDQ form ONNX Runtime runs as DQ -> HardSwish -> Q.

`speed_up(model)` applies both and returns what it did; the graph's outputs are unchanged up to
float rounding (tests/unit/targets/test_onnx_speed.py checks that against ONNX Runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

HARD_SWISH_OPSET = 14


def _constants(model) -> dict:
    import numpy as np
    from onnx import numpy_helper

    return {init.name: np.asarray(numpy_helper.to_array(init)) for init in model.graph.initializer}


def _readers(model) -> dict[str, list]:
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _only_reader(readers: dict, outputs: set[str], name: str, op_type: str):
    """The one node reading `name` when it has that op type and `name` is no graph output."""
    found = readers.get(name, [])
    if len(found) == 1 and found[0].op_type == op_type and name not in outputs:
        return found[0]
    return None


def _per_channel(value, channels: int):
    """A constant as one value per output channel of a 4-D NCHW tensor, or None when it broadcasts otherwise."""
    import numpy as np

    if value is None or value.dtype != np.float32:
        return None
    if value.size == 1 and value.ndim <= 4:
        return np.full(channels, float(value.ravel()[0]), np.float32)
    if value.size == channels and value.ndim >= 3 and value.shape[-1] == 1 and value.shape[-2] == 1 and value.shape[-3] == channels:
        return value.reshape(channels).astype(np.float32)
    return None


def _other(node, name: str, constants: dict):
    if len(node.input) != 2 or name not in node.input:
        return None
    other = node.input[1] if node.input[0] == name else node.input[0]
    return constants.get(other)


def fold_conv_affine(model: onnx.ModelProto) -> int:
    """Fold Conv -> Mul(c) [-> Add(c)] and Conv -> Add(c) into the Conv (c per tensor or per
    output channel); returns how many Mul/Add nodes went."""
    import numpy as np
    from onnx import numpy_helper

    constants, readers = _constants(model), _readers(model)
    outputs = {output.name for output in model.graph.output}
    removed, gone = 0, set[str]()
    for conv in list(model.graph.node):
        if conv.op_type != "Conv" or len(conv.input) < 2 or conv.input[1] not in constants:
            continue
        weight = constants[conv.input[1]]
        bias = constants.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0], np.float32)
        if weight.dtype != np.float32 or bias is None:
            continue
        scale, shift, tail = np.ones(weight.shape[0], np.float32), np.zeros(weight.shape[0], np.float32), conv.output[0]
        folded = []
        mul = _only_reader(readers, outputs, tail, "Mul")
        factor = _per_channel(_other(mul, tail, constants), weight.shape[0]) if mul is not None else None
        if factor is not None:
            scale, tail = factor, mul.output[0]
            folded.append(mul)
        add = _only_reader(readers, outputs, tail, "Add")
        term = _per_channel(_other(add, tail, constants), weight.shape[0]) if add is not None else None
        if term is not None:
            shift, tail = term, add.output[0]
            folded.append(add)
        if not folded:
            continue
        new_weight = numpy_helper.from_array((weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(np.float32), f"{conv.name}_folded_w")
        new_bias = numpy_helper.from_array((bias * scale + shift).astype(np.float32), f"{conv.name}_folded_b")
        model.graph.initializer.extend([new_weight, new_bias])
        conv.input[1] = new_weight.name
        if len(conv.input) > 2:
            conv.input[2] = new_bias.name
        else:
            conv.input.append(new_bias.name)
        conv.output[0] = tail  # the Conv now writes what the last folded node wrote
        gone.update(node.name for node in folded)
        removed += len(folded)
    _drop(model, gone)
    return removed


def fold_affine_into_next_conv(model: onnx.ModelProto) -> int:
    """Fold Mul(c) [-> Add(c)] (c per tensor or per channel) into the Conv that reads it when that
    Conv pads nothing and has one group (PP-LCNet's pointwise convs after a HardSwish): the
    scale goes into the weights of each input channel, the shift into the bias through the sum of
    the weights it meets. With padding the shift would not reach the padded border: left alone.
    Returns how many Mul/Add nodes went."""
    import numpy as np
    from onnx import helper, numpy_helper

    constants, readers = _constants(model), _readers(model)
    outputs = {output.name for output in model.graph.output}
    removed, gone = 0, set[str]()
    for first in list(model.graph.node):
        if first.op_type not in ("Mul", "Add") or first.name in gone or len(first.input) != 2:
            continue
        source = first.input[0] if first.input[1] in constants else first.input[1]
        if source in constants:
            continue
        chain = [first]
        if first.op_type == "Mul":
            add = _only_reader(readers, outputs, first.output[0], "Add")
            if add is not None and _other(add, first.output[0], constants) is not None:
                chain.append(add)
        conv = _only_reader(readers, outputs, chain[-1].output[0], "Conv")
        if conv is None or conv.input[0] != chain[-1].output[0] or conv.input[1] not in constants:
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in conv.attribute}
        padded = any(attributes.get("pads") or [0]) or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
        if attributes.get("group", 1) != 1 or padded:
            continue
        weight = constants[conv.input[1]]
        channels = weight.shape[1]
        scale, shift, tensor = np.ones(channels, np.float32), np.zeros(channels, np.float32), source
        for node in chain:
            value = _per_channel(_other(node, tensor, constants), channels)
            if value is None:
                break
            if node.op_type == "Mul":
                scale, shift = scale * value, shift * value
            else:
                shift = shift + value
            tensor = node.output[0]
        else:
            bias = constants.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(weight.shape[0], np.float32)
            if bias is None or weight.dtype != np.float32:
                continue
            spread = (1, channels, *[1] * (weight.ndim - 2))
            new_weight = numpy_helper.from_array((weight * scale.reshape(spread)).astype(np.float32), f"{conv.name}_in_folded_w")
            new_bias = numpy_helper.from_array((bias + (weight * shift.reshape(spread)).sum(axis=tuple(range(1, weight.ndim)))).astype(np.float32),
                                               f"{conv.name}_in_folded_b")
            model.graph.initializer.extend([new_weight, new_bias])
            conv.input[0], conv.input[1] = source, new_weight.name
            if len(conv.input) > 2:
                conv.input[2] = new_bias.name
            else:
                conv.input.append(new_bias.name)
            gone.update(node.name for node in chain)
            removed += len(chain)
    _drop(model, gone)
    return removed


def fuse_hard_swish(model: onnx.ModelProto) -> int:
    """x -> Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(., 6) (or Mul(., 1/6)) becomes HardSwish(x);
    returns how many. The caller raises the opset to 14 first (HardSwish's first)."""
    import onnx

    constants, readers = _constants(model), _readers(model)
    outputs = {output.name for output in model.graph.output}

    def scalar(node, name):
        value = _other(node, name, constants)
        return float(value.ravel()[0]) if value is not None and value.size == 1 else None

    fused, gone, added = 0, set[str](), []
    for add in list(model.graph.node):
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        source = add.input[0] if add.input[1] in constants else add.input[1]
        if scalar(add, source) != 3.0:
            continue
        clip = _only_reader(readers, outputs, add.output[0], "Clip")
        if clip is None or not _clips_0_6(clip, constants):
            continue
        mul = _only_reader(readers, outputs, clip.output[0], "Mul")
        if mul is None or sorted(mul.input) != sorted([source, clip.output[0]]):
            continue
        last = _only_reader(readers, outputs, mul.output[0], "Div")
        if last is None or scalar(last, mul.output[0]) != 6.0 or last.input[0] != mul.output[0]:
            last = _only_reader(readers, outputs, mul.output[0], "Mul")
            if last is None or scalar(last, mul.output[0]) is None or abs(scalar(last, mul.output[0]) - 1 / 6) > 1e-6:
                continue
        added.append((add, onnx.helper.make_node("HardSwish", [source], [last.output[0]], name=f"{add.name}_hard_swish")))
        gone.update(node.name for node in (add, clip, mul, last))
        fused += 1
    if fused:
        place = {anchor.name: node for anchor, node in added}
        nodes = []
        for node in model.graph.node:
            if node.name in place:
                nodes.append(place[node.name])  # where the Add was: after x's producer, before any reader
            if node.name not in gone:
                nodes.append(node)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return fused


def _clips_0_6(clip, constants: dict) -> bool:
    bounds = {attribute.name: attribute.f for attribute in clip.attribute}  # opset < 11 keeps them as attributes
    for key, name in zip(("min", "max"), clip.input[1:3]):
        if name:
            bounds[key] = float(constants[name].ravel()[0]) if name in constants and constants[name].size == 1 else float("nan")
    return bounds.get("min") == 0.0 and bounds.get("max") == 6.0


def _drop(model, gone: set[str]) -> None:
    """Remove the nodes named in `gone` (the cleaned graph's node names are unique, targets/graph.py)."""
    nodes = [node for node in model.graph.node if node.name not in gone]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _default_opset(model) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def speed_up(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """The three rewrites; the default opset is raised to 14 for HardSwish only when the pattern is there."""
    folded = fold_conv_affine(model)
    folded += fold_affine_into_next_conv(model)
    fused = 0
    if _default_opset(model) < HARD_SWISH_OPSET:
        probe = type(model)()
        probe.CopyFrom(model)
        if fuse_hard_swish(probe):
            from onnx import version_converter

            try:
                raised = version_converter.convert_version(model, HARD_SWISH_OPSET)
            except Exception:  # the converter raises C++ errors of several types; the graph stays as it is, only slower
                raised = None
            if raised is not None:
                model = raised
                fused = fuse_hard_swish(model)
    else:
        fused = fuse_hard_swish(model)
    _drop_unused_initializers(model)
    return model, {"conv_affine_folded": folded, "hard_swish_fused": fused}


def _drop_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input} | {output.name for output in model.graph.output}
    for init in [init for init in model.graph.initializer if init.name not in used]:
        model.graph.initializer.remove(init)
