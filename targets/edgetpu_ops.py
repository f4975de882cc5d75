"""Where an int8 TFLite model splits between the Coral Edge TPU and the CPU: predicted from
Coral's documented operator table before `edgetpu_compiler` runs, and read back from the
compiler's own report when the user has the compiler.

Google's compiler comes only from Google's apt repository (and the PyPI project `pycoral` is
an unrelated package), so edgeship cannot run it everywhere; it predicts the placement itself.

Sources (stored copies read through the workplace's search tool on 2026-12-01; none shows
the date it was captured):
- Coral, "TensorFlow models on the Edge TPU", https://coral.ai/docs/edgetpu/models-intro/ :
  the model requirements (tensor parameters quantized to 8 bits, int8 or uint8; tensor sizes
  and model parameters such as biases constant at compile time; tensors 1-, 2- or 3-D, or, with
  more dimensions, only the 3 innermost larger than 1) and the "Supported operations" table
  (operation, runtime version, known limitations). The stored copy of that page holds only its
  opening; the table rows below were checked against two verbatim copies of it: Axis's
  ARTPEC-7 "supported ops" page (developer.axis.com, ARTPEC-7 carries an Edge TPU; the runtime
  13+ wording) and an older copy in dgist-datalab/Datalab_Intern (runtime <= 12 wording: Mean,
  Pad, Squeeze, Softmax, StridedSlice). Neither copy has the runtime-version column; it was
  filled in from the Coral table as last seen, and agrees with what users quote from it
  (Quantize ">=13" in google-coral/edgetpu#659; TransposeConv 13+, ReduceMax/ReduceMin/LSTM 14+).
- Coral, "Edge TPU Compiler", https://coral.ai/docs/edgetpu/compiler/ : `-m` (min runtime
  version; compiler 16 targets runtime 14 by default), `-s` (print the operation table, also
  written to the `.log` beside the model), `-a`/`-d` (more than one Edge TPU subgraph, search
  delegate).
- The partitioning rule: the compiler maps ops into one Edge TPU subgraph until the first
  unsupported op; that op and everything after it run on the CPU ("More than one subgraph is
  not supported"), unless `-a` is used (the models-intro page; restated by Coral's maintainer
  in google-coral/edgetpu#461 and #30).
- How the compiler treats the quantize/dequantize pair at a float model's edges, and its log
  format and status texts: logs quoted in google-coral/edgetpu#13, #75, #342, #461, #659 and
  f0cal/google-coral#20. A QUANTIZE from a float model input stays on the CPU ("Operation is
  otherwise supported, but not mapped due to some unspecified limitation") and the ops after
  it still map; DEQUANTIZE is not in the table ("Operation is working on an unsupported data
  type"). QUANTIZE between 8-bit types (the uint8<->int8 ops of a uint8-I/O model) maps from
  runtime 13 on.

The interpreter reports op types and tensors but not an op's attributes (fused activation,
dilation, strides masks, axis); those come from the model's flatbuffer through the TFLite
schema module that ships with LiteRT (or TensorFlow). Without it, the attribute limits are
reported as unchecked caveats, not guessed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# The Edge TPU runtime that edgetpu_compiler 16.0 (the last release) targets by default.
DEFAULT_RUNTIME_VERSION = 14

# Coral's "Supported operations" table, keyed by the TFLite builtin name the LiteRT
# interpreter reports. `runtime`: the first Edge TPU runtime version that maps the op (None:
# every version). `limits`: the table's "Known limitations" for runtime 13+; `limits_up_to_12`:
# the text for runtime <= 12 where the table has a separate row.
SUPPORTED_OPS: dict[str, dict] = {
    "ADD": {"coral": "Add", "runtime": None, "limits": ""},
    "AVERAGE_POOL_2D": {"coral": "AveragePool2d", "runtime": None, "limits": "No fused activation function."},
    "CONCATENATION": {"coral": "Concatenation", "runtime": None,
                      "limits": "No fused activation function. If any input is a compile-time constant tensor, there must be "
                                "only 2 inputs, and this constant tensor must be all zeroes (effectively, a zero-padding op)."},
    "CONV_2D": {"coral": "Conv2d", "runtime": None, "limits": "Must use the same dilation in x and y dimensions."},
    "DEPTHWISE_CONV_2D": {"coral": "DepthwiseConv2d", "runtime": None, "limits": "Must use the same dilation in x and y dimensions.",
                          "limits_up_to_12": "Dilated conv kernels are not supported."},
    "EXPAND_DIMS": {"coral": "ExpandDims", "runtime": 13, "limits": ""},
    "FULLY_CONNECTED": {"coral": "FullyConnected", "runtime": None,
                        "limits": "Only the default format is supported for fully-connected weights. Output tensor is one-dimensional."},
    "L2_NORMALIZATION": {"coral": "L2Normalization", "runtime": None, "limits": ""},
    "LOGISTIC": {"coral": "Logistic", "runtime": None, "limits": ""},
    # The table's "LSTM" row says "Unidirectional LSTM only"; Keras LSTMs become
    # UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite. BIDIRECTIONAL_SEQUENCE_LSTM is left out.
    "LSTM": {"coral": "LSTM", "runtime": 14, "limits": "Unidirectional LSTM only."},
    "UNIDIRECTIONAL_SEQUENCE_LSTM": {"coral": "LSTM", "runtime": 14, "limits": "Unidirectional LSTM only."},
    "MAXIMUM": {"coral": "Maximum", "runtime": None, "limits": ""},
    "MAX_POOL_2D": {"coral": "MaxPool2d", "runtime": None, "limits": "No fused activation function."},
    "MEAN": {"coral": "Mean", "runtime": None,
             "limits": "No reduction in batch dimension. If a z-reduction, the z-dimension must be multiple of 4.",
             "limits_up_to_12": "No reduction in batch dimension. Supports reduction along x- and/or y-dimensions only."},
    "MINIMUM": {"coral": "Minimum", "runtime": None, "limits": ""},
    "MUL": {"coral": "Mul", "runtime": None, "limits": ""},
    "PACK": {"coral": "Pack", "runtime": 13, "limits": "No packing in batch dimension."},
    "PAD": {"coral": "Pad", "runtime": None, "limits": "No padding in batch dimension.",
            "limits_up_to_12": "Supports padding along x- and/or y-dimensions only."},
    "PRELU": {"coral": "PReLU", "runtime": 13,
              "limits": "Alpha must be 1-dimensional (only the innermost dimension can be >1 size)."},
    "QUANTIZE": {"coral": "Quantize", "runtime": 13, "limits": ""},
    "REDUCE_MAX": {"coral": "ReduceMax", "runtime": 14, "limits": "Cannot operate on the batch dimension."},
    "REDUCE_MIN": {"coral": "ReduceMin", "runtime": 14, "limits": "Cannot operate on the batch dimension."},
    "RELU": {"coral": "ReLU", "runtime": None, "limits": ""},
    "RELU6": {"coral": "ReLU6", "runtime": None, "limits": ""},
    "RELU_N1_TO_1": {"coral": "ReLUN1To1", "runtime": None, "limits": ""},
    "RESHAPE": {"coral": "Reshape", "runtime": None, "limits": "Certain reshapes might not be mapped for large tensor sizes."},
    "RESIZE_BILINEAR": {"coral": "ResizeBilinear", "runtime": None,
                        "limits": "Input/output is a 3-dimensional tensor. Depending on input/output size, this operation may "
                                  "not be mapped to the Edge TPU to avoid loss in precision."},
    "RESIZE_NEAREST_NEIGHBOR": {"coral": "ResizeNearestNeighbor", "runtime": None,
                                "limits": "Input/output is a 3-dimensional tensor. Depending on input/output size, this operation "
                                          "may not be mapped to the Edge TPU to avoid loss in precision."},
    "RSQRT": {"coral": "Rsqrt", "runtime": 14, "limits": ""},
    "SLICE": {"coral": "Slice", "runtime": None, "limits": ""},
    "SOFTMAX": {"coral": "Softmax", "runtime": None, "limits": "Supports only 1-D input tensor with a max of 16,000 elements."},
    "SPACE_TO_DEPTH": {"coral": "SpaceToDepth", "runtime": None, "limits": ""},
    "SPLIT": {"coral": "Split", "runtime": None, "limits": "No splitting in batch dimension."},
    "SQUEEZE": {"coral": "Squeeze", "runtime": None, "limits": "",
                "limits_up_to_12": "Supported only when input tensor dimensions that have leading 1s (that is, no relayout "
                                   "needed). For example input tensor with [y][x][z] = 1,1,10 or 1,5,10 is ok. But "
                                   "[y][x][z] = 5,1,10 is not supported."},
    "STRIDED_SLICE": {"coral": "StridedSlice", "runtime": None,
                      "limits": "Supported only when all strides are equal to 1 (that is, effectively a Stride op), and with "
                                "ellipsis-axis-mask == 0, and new-axis-max == 0."},
    "SUB": {"coral": "Sub", "runtime": None, "limits": ""},
    "SUM": {"coral": "Sum", "runtime": 13, "limits": "Cannot operate on the batch dimension."},
    "SQUARED_DIFFERENCE": {"coral": "Squared-difference", "runtime": 14, "limits": ""},
    "TANH": {"coral": "Tanh", "runtime": None, "limits": ""},
    "TRANSPOSE": {"coral": "Transpose", "runtime": 14, "limits": ""},
    "TRANSPOSE_CONV": {"coral": "TransposeConv", "runtime": 13, "limits": ""},
}

SOFTMAX_MAX_ELEMENTS = 16000
# Operator code versions above these make edgetpu_compiler 16.0 (the last release, 2022) fail the
# whole model instead of leaving the op to the CPU. Coral publishes no version table; the one
# known case is a user's compile of a TensorFlow 2.19 conversion: a grouped convolution made
# TFLite mark CONV_2D as version 6, and the compiler stopped with "Didn't find op for builtin
# opcode 'CONV_2D' version '6'" (and, with the version flag lowered by hand, at that conv's
# channel check). Versions of every op are reported, so that another such error can be matched.
COMPILER_MAX_VERSIONS = {"CONV_2D": 5}
EIGHT_BIT = ("int8", "uint8")
# The compiler's status for an op it placed on the Edge TPU; every other status is a CPU op.
MAPPED_STATUS = "Mapped to Edge TPU"
# Which input of an op holds the weights and bias that must be constant at compile time.
PARAMETER_INPUTS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2), "TRANSPOSE_CONV": (1, 3)}
ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
# Constant int32/int64 tensors up to this size keep their values (axes, paddings, strides, split axis).
SMALL_CONSTANT = 64


@dataclass
class TensorInfo:
    """One tensor an op reads or writes, as the interpreter describes it."""

    name: str
    shape: list[int]
    dtype: str  # numpy dtype name
    quantized: bool  # has quantization parameters (a scale)
    constant: bool  # no op writes it and it is not a model input: weights, biases, axes
    dynamic: bool = False  # its shape signature has a -1 (a size unknown at compile time)
    value: list | None = None  # contents of a small constant integer tensor (axes, paddings, strides)


@dataclass
class OpInfo:
    """One op in execution order. `inputs` keep the op's input positions; an absent optional
    input (e.g. a conv without bias) is None. `options` are the op's builtin attributes from the
    flatbuffer in snake_case (None: not read)."""

    index: int
    op_name: str
    inputs: list[TensorInfo | None]
    outputs: list[TensorInfo]
    options: dict | None = field(default=None)
    # The version of the op's operator code in the flatbuffer (None: not read). TFLite gives
    # every use of a builtin the highest version any of them needs.
    version: int | None = None


# -- reading a model ------------------------------------------------------------------------
def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise ImportError("reading a .tflite model needs LiteRT or TensorFlow: pip install ai-edge-litert") from None
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    return Interpreter, OpResolverType


def _schema():
    """The TFLite flatbuffer schema module, or None when neither LiteRT nor TensorFlow ships it."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated
        except ImportError:
            return None
    return schema_py_generated


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _operator_details(model_bytes: bytes) -> list[tuple[dict, int]] | None:
    """(builtin options, operator code version) of each operator in subgraph 0, in flatbuffer
    order (which is the order the interpreter executes them in), or None without the schema
    module."""
    schema = _schema()
    if schema is None:
        return None
    model = schema.Model.GetRootAs(model_bytes, 0)
    subgraph = model.Subgraphs(0)
    details = []
    for position in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(position)
        unpacked = schema.BuiltinOptionsCreator(operator.BuiltinOptionsType(), operator.BuiltinOptions())
        attributes = vars(unpacked) if unpacked is not None else {}
        options = {_snake(key): value for key, value in attributes.items() if isinstance(value, (bool, int, float))}
        details.append((options, int(model.OperatorCodes(operator.OpcodeIndex()).Version())))
    return details


def ops_from_tflite(path) -> list[OpInfo]:
    """The ops of a .tflite model's main subgraph in execution order, with their tensors."""
    import numpy as np

    path = Path(path)
    try:
        model_bytes = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the model ({error.strerror}); pass the .tflite file the conversion wrote") from None
    if model_bytes[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); pass the .tflite file the conversion wrote")
    interpreter_class, resolver = _interpreter_class()
    # Without default delegates, node i is operator i of subgraph 0: XNNPACK would otherwise
    # replace nodes with its own kernels and renumber the execution plan.
    try:
        interpreter = interpreter_class(model_content=model_bytes, num_threads=1,
                                        experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (RuntimeError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or ["no message"])[0]
        raise ValueError(f"{path}: LiteRT cannot load the model ({first_line}); "
                         "custom ops need their resolver, Select TF ops the Flex delegate") from None
    try:
        interpreter.allocate_tensors()
        readable = True
    except (RuntimeError, ValueError):
        readable = False  # e.g. Select TF ops this interpreter lacks; metadata is still there
    op_details = interpreter._get_ops_details()  # the only API that lists a model's ops
    model_inputs = {detail["index"] for detail in interpreter.get_input_details()}
    written = {index for detail in op_details for index in detail["outputs"]}
    details = _operator_details(model_bytes)
    tensors: dict[int, TensorInfo] = {}

    def tensor(index: int) -> TensorInfo | None:
        if index < 0:
            return None
        if index not in tensors:
            detail = interpreter._get_tensor_details(index, subgraph_index=0)
            dtype = np.dtype(detail["dtype"]).name
            constant = index not in written and index not in model_inputs
            value = None
            shape = [int(d) for d in detail["shape"]]
            if readable and constant and dtype in ("int32", "int64") and _size(shape) <= SMALL_CONSTANT:
                try:
                    value = interpreter.get_tensor(index).tolist()
                except ValueError:
                    value = None
            signature = detail.get("shape_signature", detail["shape"])
            tensors[index] = TensorInfo(name=detail["name"], shape=shape, dtype=dtype,
                                        quantized=len(detail["quantization_parameters"]["scales"]) > 0,
                                        constant=constant, dynamic=any(int(d) < 0 for d in signature), value=value)
        return tensors[index]

    ops: list[OpInfo] = []
    for detail in op_details:
        index = int(detail["index"])
        options, version = details[index] if details is not None and index < len(details) else (None, None)
        ops.append(OpInfo(index=index, op_name=detail["op_name"], inputs=[tensor(int(i)) for i in detail["inputs"]],
                          outputs=[t for t in (tensor(int(i)) for i in detail["outputs"]) if t is not None],
                          options=options, version=version))
    return ops


# -- predicting the placement ---------------------------------------------------------------
def _size(shape) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size


def _non_unit(shape) -> int:
    return sum(1 for dim in shape if int(dim) > 1)


def _axes(value, rank: int) -> set[int]:
    flat = value if isinstance(value, list) else [value]
    flat = [item for sub in flat for item in (sub if isinstance(sub, list) else [sub])]
    return {int(axis) % rank for axis in flat} if rank else set()


def _tensors(op: OpInfo):
    return [t for t in op.inputs if t is not None] + list(op.outputs)


def _data_type_problems(op: OpInfo) -> list[str]:
    """The requirement "tensor parameters are quantized (8-bit fixed-point numbers; int8 or uint8)":
    every tensor an op computes on is 8-bit quantized. Constant int32 biases are quantized too;
    other constant integer tensors (shapes, axes, paddings) are parameters, not data."""
    problems = []
    for t in _tensors(op):
        if t.constant:
            if t.dtype.startswith("float") or (t.dtype in EIGHT_BIT and not t.quantized):
                problems.append(f"parameter tensor {t.name!r} is {t.dtype}, not quantized to 8 bits")
        elif t.dtype not in EIGHT_BIT or not t.quantized:
            kind = t.dtype if t.dtype not in EIGHT_BIT else f"{t.dtype} without quantization parameters"
            problems.append(f"tensor {t.name!r} is {kind}; the Edge TPU computes only on 8-bit quantized tensors (int8/uint8)")
    return problems


def _shape_problems(op: OpInfo) -> list[str]:
    problems = []
    for t in _tensors(op):
        if t.dynamic:
            problems.append(f"tensor {t.name!r} has a dynamic size; tensor sizes must be constant at compile time")
        elif not t.constant and len(t.shape) > 3 and any(int(d) > 1 for d in t.shape[:-3]):
            problems.append(f"tensor {t.name!r} has shape {list(t.shape)}: with more than 3 dimensions, only the 3 innermost "
                            "may be larger than 1")
    return problems


def _parameter_problems(op: OpInfo) -> list[str]:
    problems = []
    for position in PARAMETER_INPUTS.get(op.op_name, ()):
        t = op.inputs[position] if position < len(op.inputs) else None
        if t is not None and not t.constant:
            problems.append(f"weights/bias {t.name!r} are computed at run time; model parameters must be constant at compile time")
    return problems


def _limit_problems(op: OpInfo, runtime_version: int) -> tuple[list[str], list[str]]:
    """(problems, caveats) from the table's "Known limitations" that shapes, constant values and
    attributes show; a caveat is a documented limit this function cannot check."""
    name, options = op.op_name, op.options
    problems, caveats = [], []
    first = next((t for t in op.inputs if t is not None and not t.constant), None)
    rank = len(first.shape) if first is not None else 0

    def option(key, default=0):
        return options.get(key, default) if options is not None else None

    def unchecked(what):
        caveats.append(f"{what} not checked (the op's attributes were not read)")

    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        activation = option("fused_activation_function")
        if activation is None:
            unchecked("'No fused activation function'")
        elif activation:
            problems.append(f"fused activation {ACTIVATION_NAMES.get(activation, activation)}: {name} takes no fused activation function")
    if name == "CONCATENATION":
        constants = [t for t in op.inputs if t is not None and t.constant]
        if constants and len(op.inputs) != 2:
            problems.append(f"{len(op.inputs)} inputs with a constant one ({constants[0].name!r}): a constant input is allowed "
                            "only as one of 2 inputs (a zero-padding)")
        elif constants:
            caveats.append(f"constant input {constants[0].name!r} must be all zeros (its values are not checked)")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dilation = (option("dilation_h_factor", 1), option("dilation_w_factor", 1))
        if options is None:
            unchecked("dilation")
        elif name == "DEPTHWISE_CONV_2D" and runtime_version <= 12 and dilation != (1, 1):
            problems.append(f"dilation {dilation[0]}x{dilation[1]}: runtime {runtime_version} maps no dilated depthwise kernels")
        elif dilation[0] != dilation[1]:
            problems.append(f"dilation {dilation[0]} (y) and {dilation[1]} (x): must use the same dilation in x and y")
    if name == "FULLY_CONNECTED":
        weights_format = option("weights_format")
        if weights_format is None:
            unchecked("the weights format")
        elif weights_format:
            problems.append("shuffled weights format: only the default format is supported for fully-connected weights")
        if op.outputs and _non_unit(op.outputs[0].shape) > 1:
            problems.append(f"output shape {list(op.outputs[0].shape)}: the output tensor must be one-dimensional")
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and first is not None:
        axes_tensor = op.inputs[1] if len(op.inputs) > 1 else None
        if axes_tensor is None or axes_tensor.value is None:
            caveats.append("reduction axes not checked (not a small constant)")
        else:
            axes = _axes(axes_tensor.value, rank)
            if rank >= 2 and 0 in axes:
                problems.append(f"reduces axis 0 of {list(first.shape)}: no reduction in the batch dimension")
            if name == "MEAN" and runtime_version <= 12 and rank == 4 and not axes <= {1, 2}:
                problems.append(f"reduces axes {sorted(axes)}: runtime {runtime_version} reduces along x and/or y only")
            elif name == "MEAN" and rank - 1 in axes and int(first.shape[-1]) % 4:
                problems.append(f"reduces the z-dimension of size {first.shape[-1]}: a z-reduction needs a multiple of 4")
    if name == "PAD" and first is not None:
        paddings = op.inputs[1] if len(op.inputs) > 1 else None
        if paddings is None or paddings.value is None:
            caveats.append("paddings not checked (not a small constant)")
        else:
            padded = [axis for axis, pair in enumerate(paddings.value) if any(pair)]
            if rank >= 2 and 0 in padded:
                problems.append("pads axis 0: no padding in the batch dimension")
            if runtime_version <= 12 and rank == 4 and not set(padded) <= {1, 2}:
                problems.append(f"pads axes {padded}: runtime {runtime_version} pads along x and/or y only")
    if name == "SPLIT":
        axis_tensor = op.inputs[0] if op.inputs else None  # SPLIT's axis comes first
        data = op.inputs[1] if len(op.inputs) > 1 else None
        if axis_tensor is None or axis_tensor.value is None or data is None:
            caveats.append("split axis not checked")
        elif len(data.shape) >= 2 and 0 in _axes(axis_tensor.value, len(data.shape)):
            problems.append("splits axis 0: no splitting in the batch dimension")
    if name == "PACK":
        axis = option("axis")
        if axis is None:
            unchecked("the pack axis")
        elif op.outputs and len(op.outputs[0].shape) >= 2 and axis % len(op.outputs[0].shape) == 0:
            problems.append("packs along axis 0: no packing in the batch dimension")
    if name == "PRELU":
        alpha = op.inputs[1] if len(op.inputs) > 1 else None
        if alpha is not None and any(int(d) > 1 for d in alpha.shape[:-1]):
            problems.append(f"alpha shape {list(alpha.shape)}: alpha must be 1-dimensional (only the innermost dimension > 1)")
    if name == "SOFTMAX" and first is not None:
        if _non_unit(first.shape) > 1:
            problems.append(f"input shape {list(first.shape)}: softmax maps only a 1-D input")
        if _size(first.shape) > SOFTMAX_MAX_ELEMENTS:
            problems.append(f"input of {_size(first.shape)} elements: softmax maps at most {SOFTMAX_MAX_ELEMENTS:,}")
    if name == "STRIDED_SLICE":
        strides = op.inputs[3] if len(op.inputs) > 3 else None
        if strides is None or strides.value is None:
            caveats.append("strides not checked (not a small constant)")
        elif any(int(s) != 1 for s in strides.value):
            problems.append(f"strides {strides.value}: all strides must be 1")
        masks = (option("ellipsis_mask"), option("new_axis_mask"))
        if options is None:
            unchecked("ellipsis/new-axis masks")
        elif any(masks):
            problems.append(f"ellipsis_mask {masks[0]}, new_axis_mask {masks[1]}: both must be 0")
    if name == "SQUEEZE" and runtime_version <= 12 and first is not None:
        dims = [int(d) for d in first.shape]
        if any(dims[i] == 1 and any(d > 1 for d in dims[:i]) for i in range(len(dims))):
            problems.append(f"input shape {dims}: runtime {runtime_version} squeezes only leading 1s (no relayout)")
    if name in ("RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        caveats.append(SUPPORTED_OPS[name]["limits"])
    return problems, caveats


def _op_problems(op: OpInfo, runtime_version: int) -> tuple[list[str], list[str]]:
    entry = SUPPORTED_OPS.get(op.op_name)
    if entry is None:
        return [f"{op.op_name} is not in the Edge TPU's supported operations table"], []
    if entry["runtime"] and runtime_version < entry["runtime"]:
        return [f"{op.op_name} maps only from Edge TPU runtime {entry['runtime']} (target runtime {runtime_version}; "
                "compile with a newer -m)"], []
    problems = _data_type_problems(op) + _shape_problems(op) + _parameter_problems(op)
    limit_problems, caveats = _limit_problems(op, runtime_version)
    return problems + limit_problems, caveats


def _float_input_quantize(op: OpInfo) -> bool:
    """A QUANTIZE that turns a float input into 8 bits: the edge of a float-I/O model."""
    source = op.inputs[0] if op.inputs else None
    return op.op_name == "QUANTIZE" and source is not None and source.dtype.startswith("float")


def compile_blockers(ops: list[OpInfo]) -> list[dict]:
    """Ops that make edgetpu_compiler 16.0 refuse the whole model (not a CPU op: no compiled model
    at all), as far as reports show: an operator code version newer than it reads, and a grouped
    convolution (a CONV_2D whose filter has fewer input channels than its input)."""
    blockers, seen_versions = [], set()
    for op in ops:
        limit = COMPILER_MAX_VERSIONS.get(op.op_name)
        if limit is not None and op.version is not None and op.version > limit and op.op_name not in seen_versions:
            seen_versions.add(op.op_name)  # one operator code for every use of the op: say it once
            blockers.append({"index": op.index, "op_name": op.op_name,
                             "reason": f"{op.op_name} version {op.version}: edgetpu_compiler 16.0 reads it up to version {limit} "
                                       f"(\"Didn't find op for builtin opcode '{op.op_name}' version '{op.version}'\")"})
        data, weights = (op.inputs + [None, None])[:2]
        if op.op_name == "CONV_2D" and data is not None and weights is not None and len(data.shape) == 4 and len(weights.shape) == 4 \
                and int(weights.shape[3]) != int(data.shape[3]):
            strides = (op.options or {}).get("stride_h"), (op.options or {}).get("stride_w")
            why = (f"; strides {strides[0]}x{strides[1]}: TensorFlow's depthwise convolution takes equal strides only, so a "
                   "depthwise conv with these was written as a grouped one" if None not in strides and strides[0] != strides[1] else "")
            blockers.append({"index": op.index, "op_name": op.op_name,
                             "reason": f"grouped convolution ({data.shape[3]} input channels, filter {list(weights.shape)}{why}): "
                                       "edgetpu_compiler 16.0 refuses it; give the model plain or equal-stride depthwise convolutions"})
    return blockers


def predict_placement(ops: list[OpInfo], runtime_version: int = DEFAULT_RUNTIME_VERSION) -> dict:
    """Which ops the Edge TPU compiler (default options: one Edge TPU subgraph) would map.

    Ops are taken in execution order. Each op is checked against the table, the 8-bit and
    static-shape and rank requirements, constant parameters and the known limitations its
    shapes and attributes show. The first op that fails ends the Edge TPU subgraph: it and
    every later op run on the CPU. The one exception is a QUANTIZE of a float model input
    before any mapped op: it runs on the CPU ahead of the subgraph, as compiler logs show.
    `compile_blockers` lists ops that would make the compiler refuse the model altogether.
    """
    placements, split, tpu_started = [], None, False
    for op in ops:
        problems, caveats = _op_problems(op, runtime_version)
        if split is not None:
            placement = "cpu"
            reason = (f"after the split at op {split['index']} ({split['op_name']}): the compiler builds one Edge TPU "
                      "subgraph by default, so later ops stay on the CPU")
        elif problems and not tpu_started and _float_input_quantize(op):
            placement, reason = "cpu", f"quantizes the float model input on the CPU ahead of the Edge TPU subgraph ({problems[0]})"
        elif problems:
            placement, reason = "cpu", "; ".join(problems)
            split = {"index": op.index, "op_name": op.op_name, "reason": reason}
        else:
            placement, reason, tpu_started = "tpu", "in the Edge TPU table; requirements and checkable limits met", True
        entry = {"index": op.index, "op": op.op_name, "placement": placement, "reason": reason}
        if caveats and placement == "tpu":
            entry["caveats"] = caveats
        placements.append(entry)
    by_op: dict[str, dict[str, int]] = {}
    for entry in placements:
        by_op.setdefault(str(entry["op"]), {"tpu": 0, "cpu": 0})[str(entry["placement"])] += 1
    first_cpu = next((e for e in placements if e["placement"] == "cpu"), None)
    tpu_ops = sum(1 for e in placements if e["placement"] == "tpu")
    return {
        "runtime_version": runtime_version,
        "tpu_ops": tpu_ops,
        "cpu_ops": len(placements) - tpu_ops,
        "tpu_subgraphs": 1 if tpu_ops else 0,
        "first_cpu_op": {"index": first_cpu["index"], "op_name": first_cpu["op"], "reason": first_cpu["reason"]} if first_cpu else None,
        "split": split,
        "ops": placements,
        "by_op": dict(sorted(by_op.items())),
        "op_versions": dict(sorted({op.op_name: op.version for op in ops if op.version is not None}.items())),
        "compile_blockers": compile_blockers(ops),
    }


# -- the compiler's report ------------------------------------------------------------------
_ROW = re.compile(r"^(?P<op>[A-Za-z0-9_\-]+)\s+(?P<count>\d+)\s+(?P<status>\S.*?)\s*$")
_FIELDS = {
    "compiler_version": re.compile(r"^Edge TPU Compiler version\s+(\S+)"),
    "model_file": re.compile(r"^Input(?: model)?:\s+(.+?)\s*$"),
    "output_file": re.compile(r"^Output(?: model)?:\s+(.+?)\s*$"),
    "operation_log": re.compile(r"^Operation log:\s+(.+?)\s*$"),
}
_COUNTS = {
    "tpu_subgraphs": re.compile(r"^Number of Edge TPU subgraphs:\s+(\d+)"),
    "total_ops": re.compile(r"^Total number of operations:\s+(\d+)"),
    "tpu_ops": re.compile(r"^Number of operations that will run on Edge TPU:\s+(\d+)"),
    "cpu_ops": re.compile(r"^Number of operations that will run on CPU:\s+(\d+)"),
}


def parse_compiler_log(text: str) -> dict:
    """edgetpu_compiler's stdout (with -s) or its `<model>_edgetpu.log`, as a dict.

    Keys: compiler_version, model_file, output_file, operation_log, compiled (the "Model
    compiled successfully" line), tpu_subgraphs, total_ops, tpu_ops, cpu_ops, ops (the
    "Operator / Count / Status" rows, each with placement "tpu" or "cpu"), errors. Missing
    values are None. When every op maps the compiler prints no per-device counts; they are then
    summed from the rows, or taken from the total when there are no rows and no "not all
    operations are supported" notice. One model per log: co-compiled models repeat the block.
    """
    result: dict = {key: None for key in (*_FIELDS, *_COUNTS)}
    result.update({"compiled": None, "ops": [], "errors": []})
    in_table, partial_notice = False, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^Operator\s+Count\s+Status$", line):
            in_table = True
            continue
        if in_table:
            row = _ROW.match(line)
            if row and not line.startswith(("Number of", "Compilation", "Model ")):
                status = row["status"]
                result["ops"].append({"op": row["op"], "count": int(row["count"]), "status": status,
                                      "placement": "tpu" if status == MAPPED_STATUS else "cpu"})
                continue
            in_table = False
        for key, pattern in _FIELDS.items():
            match = pattern.match(line)
            if match and result[key] is None:
                result[key] = match.group(1)
        for key, pattern in _COUNTS.items():
            match = pattern.match(line)
            if match:
                result[key] = int(match.group(1))
        if line.startswith("Model compiled successfully"):
            result["compiled"] = True
        elif "not all operations are supported by the Edge TPU" in line:
            partial_notice = True
        elif line.startswith(("ERROR", "Error", "Internal compiler error")) or "Compilation failed" in line:
            result["errors"].append(line)
            result["compiled"] = False
    if result["ops"]:
        counted: Counter[str] = Counter()
        for row in result["ops"]:
            counted[row["placement"]] += row["count"]
        for key, placement in (("tpu_ops", "tpu"), ("cpu_ops", "cpu")):
            if result[key] is None:
                result[key] = counted[placement]
    elif result["tpu_ops"] is None and result["total_ops"] is not None and result["compiled"] and not partial_notice:
        result["tpu_ops"], result["cpu_ops"] = result["total_ops"], 0
    return result


def compare_with_prediction(predicted: dict, compiled: dict) -> dict:
    """Predicted against compiled op placement, per op type and in total.

    {"by_op": {op: {"predicted": {"tpu", "cpu"}, "compiled": {"tpu", "cpu"} or None,
    "compiled_status": [...], "agree": bool or None}}, "tpu_ops"/"cpu_ops": {"predicted",
    "compiled"}, "agree": bool or None}. Per-op figures need the compiler's operator rows (`-s`
    or the .log); without them only the totals are compared and per-op `agree` is None.
    """
    compiled_by_op: dict[str, dict] = {}
    for row in compiled.get("ops") or []:
        entry = compiled_by_op.setdefault(row["op"], {"tpu": 0, "cpu": 0, "status": []})
        entry[row["placement"]] += row["count"]
        entry["status"].append(f"{row['count']}: {row['status']}")
    have_rows = bool(compiled_by_op)
    by_op = {}
    for op in sorted(set(predicted["by_op"]) | set(compiled_by_op)):
        mine = predicted["by_op"].get(op, {"tpu": 0, "cpu": 0})
        theirs = compiled_by_op.get(op, {"tpu": 0, "cpu": 0, "status": []})
        by_op[op] = {"predicted": {"tpu": mine["tpu"], "cpu": mine["cpu"]},
                     "compiled": {"tpu": theirs["tpu"], "cpu": theirs["cpu"]} if have_rows else None,
                     "compiled_status": theirs["status"],
                     "agree": (mine["tpu"], mine["cpu"]) == (theirs["tpu"], theirs["cpu"]) if have_rows else None}
    totals = {key: {"predicted": predicted[key], "compiled": compiled.get(key)} for key in ("tpu_ops", "cpu_ops")}
    totals_known = all(entry["compiled"] is not None for entry in totals.values())
    totals_agree = all(entry["predicted"] == entry["compiled"] for entry in totals.values()) if totals_known else None
    if have_rows:
        agree = bool(totals_agree is not False and all(entry["agree"] for entry in by_op.values()))
    else:
        agree = bool(totals_agree)
    return {"by_op": by_op, **totals, "agree": agree}
