"""MediaPipe's custom TFLite kernels, and their rewrite into TFLite builtins where one exists.

MediaPipe's segmentation and landmark models call kernels of its own (mediapipe/util/tflite/
operations) that no toolchain here has. Where a kernel computes what builtins compute, the
rk3588 and tflite targets rewrite it in their image, before their toolchain reads the model:

| kernel | rewrite | why (not) |
|---|---|---|
| Convolution2DTransposeBias | TRANSPOSE_CONV + ADD | a transposed convolution whose output starts at the bias |
| MaxPoolingWithArgmax2D | none | its second output, the argmax indices, has no builtin |
| MaxUnpooling2D | none | scatters by those indices: no builtin scatters by flat indices |
| Landmarks2TransformMatrix | none | builds an affine matrix from landmarks (atan2 of two points) |
| TransformTensorBilinear | none | samples its input where that matrix says: no builtin grid sample |
| TransformLandmarks | none | applies that matrix to landmarks: needs the matrix op above |

Convolution2DTransposeBias (transpose_conv_bias.cc): inputs (input NHWC, weights OHWI, bias [O]),
custom options the raw C struct TfLiteTransposeConvParams (int32 padding, stride_width,
stride_height; TfLitePadding 1 SAME, 2 VALID); the output is bias plus the transposed
convolution, of size stride*(in-1)+filter-total with total = max(0, filter-(in-1)%stride-1) for
SAME (0 for VALID), total//2 cut before. TRANSPOSE_CONV given that output size derives the same
total and the same offset (kernels/padding.h), so the rewrite computes the same sums; the bias is
an ADD after it, which every toolchain here reads (TRANSPOSE_CONV's own bias input needs op
version 3).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

from targets.base import RequestError

CUSTOM, ADD, TRANSPOSE_CONV = 32, 0, 67  # BuiltinOperator
INT32 = 2  # TensorType
TRANSPOSE_CONV_OPTIONS, ADD_OPTIONS = 49, 11  # BuiltinOptions
SCHEMA_PADDING = {"SAME": 0, "VALID": 1}  # the schema's Padding enum (not TfLitePadding's numbering)


@dataclass(frozen=True)
class Kernel:
    name: str
    rewrite: str | None  # the builtins it becomes, or None
    why: str  # how the rewrite is exact, or why there is none


KERNELS = (
    Kernel("Convolution2DTransposeBias", "TRANSPOSE_CONV + ADD",
           "a transposed convolution whose output starts at the bias: TRANSPOSE_CONV at the kernel's output size pads as it does"),
    Kernel("MaxPoolingWithArgmax2D", None, "its second output, the argmax indices MaxUnpooling2D reads, has no TFLite builtin"),
    Kernel("MaxUnpooling2D", None, "it scatters values to flat argmax indices, which no TFLite builtin does"),
    Kernel("Landmarks2TransformMatrix", None, "it builds an affine matrix from landmark positions (a rotation from atan2), no builtin"),
    Kernel("TransformTensorBilinear", None, "it samples its input where a per-frame matrix says (a grid sample), no builtin"),
    Kernel("TransformLandmarks", None, "it applies that per-frame matrix to landmarks, made by the kernels above"),
)
BY_NAME = {kernel.name: kernel for kernel in KERNELS}
# The targets that apply the rewrites inside their image before their toolchain reads a .tflite
# (rk3588: before load_tflite; tflite: before its weights are re-stored).
APPLIED_BY = ("rk3588", "tflite")


def rewritten_ops(target_name: str) -> tuple[str, ...]:
    """The custom ops `target_name` rewrites into builtins (none for the other targets)."""
    return tuple(kernel.name for kernel in KERNELS if kernel.rewrite) if target_name in APPLIED_BY else ()


@dataclass(frozen=True)
class TransposeConvParams:
    padding: str  # "SAME" or "VALID"
    stride_w: int
    stride_h: int


def parse_transpose_conv_options(raw: bytes, where: str = "Convolution2DTransposeBias") -> TransposeConvParams:
    """MediaPipe's custom options: TfLiteTransposeConvParams as raw little-endian int32s (padding,
    stride_width, stride_height; newer TensorFlow appends an activation, which must be none)."""
    raw = bytes(raw)
    if len(raw) < 12 or len(raw) % 4:
        raise RequestError(f"{where}: custom options of {len(raw)} bytes; MediaPipe's kernel reads 12 (padding, stride_width, "
                           "stride_height as int32): re-export the model")
    padding, stride_w, stride_h, *extra = struct.unpack(f"<{len(raw) // 4}i", raw)
    if padding not in (1, 2) or stride_w < 1 or stride_h < 1 or any(extra):
        raise RequestError(f"{where}: custom options padding {padding}, strides {stride_w}x{stride_h}, then {extra}; MediaPipe's kernel "
                           "takes padding 1 (SAME) or 2 (VALID), strides >= 1 and nothing after: re-export the model")
    return TransposeConvParams("SAME" if padding == 1 else "VALID", stride_w, stride_h)


def total_padding(size: int, kernel: int, stride: int, padding: str) -> int:
    """The padding MediaPipe's kernel cuts from one spatial axis (total//2 of it before)."""
    return max(0, kernel - (size - 1) % stride - 1) if padding == "SAME" else 0


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return stride * (size - 1) + kernel - total_padding(size, kernel, stride, padding)


def transpose_conv_bias_reference(x, weights, bias, params: TransposeConvParams):
    """MediaPipe's Convolution2DTransposeBias in numpy (float64), from its documented semantics:
    every input pixel scatters weights[o, fy, fx, i] * x[i] to (y*stride - pad + fy, x*stride -
    pad + fx), onto outputs that start at the bias; what falls outside is dropped."""
    import numpy as np

    x, weights = np.asarray(x, np.float64), np.asarray(weights, np.float64)
    batch, height, width, _ = x.shape
    channels, kernel_h, kernel_w, _ = weights.shape
    out_h, out_w = (output_size(n, k, s, params.padding) for n, k, s in ((height, kernel_h, params.stride_h), (width, kernel_w, params.stride_w)))
    pad_h = total_padding(height, kernel_h, params.stride_h, params.padding) // 2
    pad_w = total_padding(width, kernel_w, params.stride_w, params.padding) // 2
    # scatter into a canvas large enough for every tap, then cut the output window out of it
    canvas = np.zeros((batch, params.stride_h * (height - 1) + kernel_h, params.stride_w * (width - 1) + kernel_w, channels))
    for fy in range(kernel_h):
        for fx in range(kernel_w):
            taps = np.einsum("nyxi,oi->nyxo", x, weights[:, fy, fx, :])
            canvas[:, fy:fy + params.stride_h * height:params.stride_h, fx:fx + params.stride_w * width:params.stride_w] += taps
    return canvas[:, pad_h:pad_h + out_h, pad_w:pad_w + out_w] + np.asarray(bias, np.float64)


# -- the rewrite (flatbuffer object API, inside the target's image) ---------------------------------
def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _opcode(model, builtin: int, version: int = 1) -> int:
    """The index of an operator code for `builtin` (an existing one, or one added)."""
    from tensorflow.lite.python import schema_py_generated as schema

    for index, code in enumerate(model.operatorCodes):
        if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _new_tensor(model, graph, name: str, shape: list[int], dtype: int, data=None) -> int:
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    from targets.tflite_source import _set_data

    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name, np.asarray(shape, np.int32), dtype, 0
    if data is not None:
        _set_data(model, tensor, data)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _transpose_conv_bias(model, graph, op) -> list:
    """[TRANSPOSE_CONV, ADD] computing what one Convolution2DTransposeBias op computes."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    x, weights, bias = (graph.tensors[int(index)] for index in op.inputs)
    out_index = int(op.outputs[0])
    output = graph.tensors[out_index]
    where = f"Convolution2DTransposeBias writing {_name(output.name)!r}"
    params = parse_transpose_conv_options(bytes(bytearray(op.customOptions if op.customOptions is not None else [])), where)
    shapes = [list(map(int, tensor.shape if tensor.shape is not None else [])) for tensor in (x, weights, bias, output)]
    (batch, height, width, _), (channels, kernel_h, kernel_w, _) = (shapes[0] + [0] * 4)[:4], (shapes[1] + [0] * 4)[:4]
    expected = [batch, output_size(height, kernel_h, params.stride_h, params.padding),
                output_size(width, kernel_w, params.stride_w, params.padding), channels]
    if len(shapes[0]) != 4 or len(shapes[1]) != 4 or shapes[2] != [channels] or shapes[3] != expected or shapes[0][3] != shapes[1][3]:
        raise RequestError(f"{where}: input {shapes[0]}, weights {shapes[1]}, bias {shapes[2]}, output {shapes[3]} do not fit "
                           f"MediaPipe's kernel (output {expected} expected); re-export the model")
    convolved = _new_tensor(model, graph, f"{_name(output.name)}/transpose_conv", expected, output.type)
    sizes = _new_tensor(model, graph, f"{_name(output.name)}/output_shape", [4], INT32, np.asarray(expected, np.int32))

    convolution = schema.OperatorT()
    convolution.opcodeIndex = _opcode(model, TRANSPOSE_CONV)
    convolution.inputs = np.asarray([sizes, int(op.inputs[1]), int(op.inputs[0])], np.int32)
    convolution.outputs = np.asarray([convolved], np.int32)
    convolution.builtinOptionsType = TRANSPOSE_CONV_OPTIONS
    convolution.builtinOptions = schema.TransposeConvOptionsT()
    convolution.builtinOptions.padding = SCHEMA_PADDING[params.padding]
    convolution.builtinOptions.strideW, convolution.builtinOptions.strideH = params.stride_w, params.stride_h

    add = schema.OperatorT()
    add.opcodeIndex = _opcode(model, ADD)
    add.inputs = np.asarray([convolved, int(op.inputs[2])], np.int32)
    add.outputs = np.asarray([out_index], np.int32)
    add.builtinOptionsType = ADD_OPTIONS
    add.builtinOptions = schema.AddOptionsT()
    return [convolution, add]


REWRITERS = {"Convolution2DTransposeBias": _transpose_conv_bias}


def custom_name(model, op) -> str | None:
    code = model.operatorCodes[op.opcodeIndex]
    return _name(code.customCode) if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == CUSTOM else None


def _drop_unused_codes(model) -> None:
    """Remove the operator codes no operator uses any more (a toolchain may refuse a custom code
    it finds in the table even with no operator calling it), renumbering the operators'."""
    used = sorted({int(op.opcodeIndex) for graph in model.subgraphs for op in graph.operators})
    renumber = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[old] for old in used]
    for graph in model.subgraphs:
        for op in graph.operators:
            op.opcodeIndex = renumber[int(op.opcodeIndex)]


def rewrite(model) -> list[dict]:
    """Replace, in place, each custom op with a rewrite by its builtins; returns what was rewritten
    ([{"op", "count", "into"}], for the manifest)."""
    counts: dict[str, int] = {}
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            name = custom_name(model, op)
            if name in REWRITERS:
                operators += REWRITERS[name](model, graph, op)
                counts[name] = counts.get(name, 0) + 1
            else:
                operators.append(op)
        graph.operators = operators
    if counts:
        _drop_unused_codes(model)
    return [{"op": name, "count": count, "into": BY_NAME[name].rewrite} for name, count in sorted(counts.items())]


# What the manifest says of the fp32 reference when a kernel was rewritten (no runtime here has
# MediaPipe's kernels, so the source itself cannot run).
REFERENCE_NOTE = ("the fp32 reference is the rewritten model run in fp32: no runtime here has MediaPipe's kernels; the rewrite "
                  "is checked against the kernel's semantics (transpose_conv_bias.cc) on the model's own layer by edgeship's tests")


def manifest_record(rewritten: list[dict]) -> dict:
    """The op report's (and manifest's) `rewrites` entry: empty when nothing was rewritten."""
    return {"rewrites": {"kernels": rewritten, "fp32_reference": REFERENCE_NOTE}} if rewritten else {}


@functools.cache  # once per job: the converter asks for it at inspect, reference, load and report
def builtin_source(source: Path, workdir: Path) -> tuple[Path, list[dict]]:
    """(the .tflite the toolchain reads, what was rewritten): `source` itself when it calls none of
    the kernels with a rewrite, else a rewritten copy in `workdir` (the source stays untouched)."""
    from tensorflow.lite.tools import flatbuffer_utils

    # convert_bytearray_to_object: what read_model_from_bytearray (TF >= 2.15) wraps; the rk3588
    # image has TF 2.14, without it (both images are little-endian x86, so no byte swap is due)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(Path(source).read_bytes()))
    rewritten = rewrite(model)
    if not rewritten:
        return Path(source), []
    out = workdir / "source-builtins.tflite"
    out.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return out, rewritten
