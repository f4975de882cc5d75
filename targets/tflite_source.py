"""TFLite sources: read and run a .tflite file, and re-store its float weights.

A .tflite flatbuffer is already compiled: no converter reads one back into a graph, so what a
target can do with one is limited to the flatbuffer itself. The tflite target offers:

- fp32: constant FLOAT16 weights behind a DEQUANTIZE op (how MediaPipe ships its models, and
  what TensorFlow's fp16 mode writes) widened to FLOAT32 constants and those DEQUANTIZE ops
  dropped. Exact: every float16 value is a float32 value, so the outputs are the source's.
- fp16: the FLOAT32 constants stored as FLOAT16 behind a DEQUANTIZE op, as TensorFlow's
  converter does in its fp16 mode; a model whose weights are already so stored is kept as is.

The rewrite works on the schema's object API (TensorFlow's `flatbuffer_utils`, inside the
target's image): no library re-stores weights of a compiled TFLite model, so it is written
here. Tensor indices are renumbered when tensors are dropped, in every operator, subgraph
and signature that names them.
"""

from __future__ import annotations

from pathlib import Path

from targets.base import RequestError

DEQUANTIZE = 6  # BuiltinOperator.DEQUANTIZE
FLOAT32, FLOAT16 = 0, 1  # TensorType
# The reference kernels' DEQUANTIZE version that takes a float16 input (op_version.cc).
DEQUANTIZE_FP16_VERSION = 3
# Ops whose kernels need their float weights as constants (they read them once, at prepare):
# their float32 constants stay float32 in fp16 mode.
CONSTANT_WEIGHT_OPS = frozenset({
    7,   # EMBEDDING_LOOKUP
    10,  # HASHTABLE_LOOKUP
    15,  # LSH_PROJECTION
    16,  # LSTM
    24,  # RNN
    27,  # SVDF
    33,  # EMBEDDING_LOOKUP_SPARSE
    35,  # UNIDIRECTIONAL_SEQUENCE_RNN
    44,  # UNIDIRECTIONAL_SEQUENCE_LSTM
    46,  # BIDIRECTIONAL_SEQUENCE_RNN
    52,  # BIDIRECTIONAL_SEQUENCE_LSTM
})


# -- reading and running a TFLite source (rk3588 and tflite share these) -------------------------
def source_io(reader) -> tuple[list[dict], list[dict]]:
    """Declared inputs and outputs of a TFLite model from its interpreter (shape signatures:
    -1 is a dynamic dimension)."""
    import numpy as np

    inputs = [{"name": d["name"], "dims": [int(x) if x > 0 else None for x in d["shape_signature"]], "float32": d["dtype"] == np.float32}
              for d in reader.get_input_details()]
    outputs = [{"name": d["name"], "dims": [int(x) if x > 0 else None for x in d["shape_signature"]]} for d in reader.get_output_details()]
    return inputs, outputs


def source_reference(reader, samples: list[dict], output_names: list[str]) -> list[dict]:
    """The source's outputs on each sample (float inputs as given, source layout)."""
    import numpy as np

    reader.allocate_tensors()
    inputs = {d["name"]: d["index"] for d in reader.get_input_details()}
    outputs = {d["name"]: d["index"] for d in reader.get_output_details()}
    results = []
    for sample in samples:
        for name, index in inputs.items():
            reader.set_tensor(index, np.asarray(sample[name], np.float32))
        reader.invoke()
        results.append({name: reader.get_tensor(outputs[name]).copy() for name in output_names})
    return results


# -- re-storing the weights -------------------------------------------------------------------------
def _code(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _data(model, tensor):
    """The constant data of a tensor as uint8 bytes, or None for a tensor with none."""
    import numpy as np

    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    if buffer is None:
        return None
    if getattr(buffer, "offset", 0) and buffer.offset > 1:
        raise RequestError("the .tflite file keeps its weights outside the flatbuffer (a model over 2 GB); "
                           "convert it from its ONNX or SavedModel source instead")
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return np.asarray(buffer.data, np.uint8)


def _set_data(model, tensor, array) -> None:
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1


def _drop_unused(model) -> None:
    """Remove tensors no operator, subgraph I/O or signature names, renumbering the rest (their
    buffers are emptied by _empty_unreferenced, where no other tensor shares them)."""
    import numpy as np

    for index, graph in enumerate(model.subgraphs):
        used = {int(t) for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
        used |= {int(t) for t in graph.inputs} | {int(t) for t in graph.outputs}
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                used |= {int(item.tensorIndex) for item in list(signature.inputs or []) + list(signature.outputs or [])}
        kept = sorted(used)
        renumber = {old: new for new, old in enumerate(kept)}
        graph.tensors = [graph.tensors[old] for old in kept]
        for op in graph.operators:
            op.inputs = np.asarray([renumber[int(t)] if t >= 0 else int(t) for t in op.inputs], np.int32)
            op.outputs = np.asarray([renumber[int(t)] for t in op.outputs], np.int32)
        graph.inputs = np.asarray([renumber[int(t)] for t in graph.inputs], np.int32)
        graph.outputs = np.asarray([renumber[int(t)] for t in graph.outputs], np.int32)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                for item in list(signature.inputs or []) + list(signature.outputs or []):
                    item.tensorIndex = renumber[int(item.tensorIndex)]


def _empty_unreferenced(model) -> None:
    """Empty the buffers no tensor of any subgraph points at any more. TFLite's exporter de-duplicates
    equal constants, so two tensors may share one buffer: a buffer is emptied only when the last
    tensor using it was re-stored or dropped."""
    import numpy as np

    used = {tensor.buffer for graph in model.subgraphs for tensor in graph.tensors}
    for index, buffer in enumerate(model.buffers):
        if index > 0 and index not in used and buffer.data is not None and len(buffer.data):
            buffer.data = np.zeros(0, np.uint8)


def widen_fp16_weights(model) -> int:
    """fp32: each DEQUANTIZE of a constant FLOAT16 tensor becomes a FLOAT32 constant; returns how many."""
    import numpy as np

    widened = 0
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            source = graph.tensors[op.inputs[0]] if _code(model, op) == DEQUANTIZE and len(op.inputs) == 1 else None
            data = _data(model, source) if source is not None and source.type == FLOAT16 else None
            if data is None:
                kept.append(op)
                continue
            target = graph.tensors[op.outputs[0]]
            _set_data(model, target, data.view(np.float16).astype(np.float32))
            widened += 1
        graph.operators = kept
    _drop_unused(model)
    _empty_unreferenced(model)
    return widened


def narrow_fp32_weights(model) -> int:
    """fp16: each FLOAT32 constant an op reads becomes a FLOAT16 constant behind a new DEQUANTIZE
    op (at the front of the graph, so every reader comes after it); returns how many."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    codes = [index for index, code in enumerate(model.operatorCodes)
             if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == DEQUANTIZE and code.version >= DEQUANTIZE_FP16_VERSION]
    narrowed = 0
    for graph in model.subgraphs:
        frozen = {int(t) for op in graph.operators if _code(model, op) in CONSTANT_WEIGHT_OPS for t in op.inputs if t >= 0}
        read = {int(t) for op in graph.operators for t in op.inputs if t >= 0}
        front = []
        for index in sorted(read - frozen):
            tensor = graph.tensors[index]
            data = _data(model, tensor) if tensor.type == FLOAT32 and tensor.buffer > 0 else None
            if data is None:
                continue
            if not codes:
                code = schema.OperatorCodeT()
                code.builtinCode = code.deprecatedBuiltinCode = DEQUANTIZE
                code.version = DEQUANTIZE_FP16_VERSION
                model.operatorCodes.append(code)
                codes.append(len(model.operatorCodes) - 1)
            half = schema.TensorT()
            half.name = (tensor.name or b"") + b"_fp16" if isinstance(tensor.name, bytes) else f"{tensor.name or ''}_fp16"
            half.shape = tensor.shape
            half.type = FLOAT16
            _set_data(model, half, data.view(np.float32).astype(np.float16))
            graph.tensors.append(half)
            tensor.buffer = 0  # its old buffer is emptied at the end if no other tensor shares it
            op = schema.OperatorT()
            op.opcodeIndex = codes[0]
            op.inputs = np.asarray([len(graph.tensors) - 1], np.int32)
            op.outputs = np.asarray([index], np.int32)
            front.append(op)
            narrowed += 1
        graph.operators = front + list(graph.operators)
    _empty_unreferenced(model)
    return narrowed


INTEGER_TYPES = (3, 7, 9)  # TensorType UINT8, INT16, INT8: what quantized weights are stored as


def quantized_weight_count(model) -> int:
    """How many constant integer tensors with quantization parameters the model's ops read (a
    quantized model's weights; an int32 shape or index constant has no scale)."""
    count = 0
    for graph in model.subgraphs:
        read = {int(t) for op in graph.operators for t in op.inputs if t >= 0}
        for index in read:
            tensor = graph.tensors[index]
            scales = getattr(tensor.quantization, "scale", None) if tensor.quantization is not None else None
            if tensor.type in INTEGER_TYPES and scales is not None and len(scales) and _data(model, tensor) is not None:
                count += 1
    return count


def float_weight_types(model) -> set[int]:
    """The types of the constant float weights the model's ops read (behind a DEQUANTIZE or not)."""
    types = set()
    for graph in model.subgraphs:
        for op in graph.operators:
            for index in op.inputs:
                tensor = graph.tensors[index] if index >= 0 else None
                if tensor is not None and tensor.type in (FLOAT32, FLOAT16) and _data(model, tensor) is not None:
                    types.add(int(tensor.type))
    return types


def restore_weights(source: Path, quant: str, out: Path) -> str:
    """Write `out`: the TFLite `source` with its float weights stored for `quant` (fp32 or fp16);
    returns one line saying what was done."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(source.read_bytes()))
    quantized = quantized_weight_count(model)
    if quantized:
        raise RequestError(f"{source.name} is quantized already ({quantized} integer weight tensor(s)): an fp32 or fp16 artifact of it "
                           "would still compute in integers; convert the model's float source (ONNX, SavedModel, Keras or a float .tflite)")
    if any(getattr(buffer, "offset", 0) > 1 for buffer in model.buffers):
        raise RequestError(f"{source.name} keeps its weights outside the flatbuffer (a model over 2 GB); "
                           "convert it from its ONNX or SavedModel source instead")
    if quant == "fp32":
        count = widen_fp16_weights(model)
        what = f"{count} float16 weight tensor(s) widened to float32" if count else "no float16 weights: the source's float32 weights kept"
    elif quant == "fp16":
        if float_weight_types(model) == {FLOAT16}:
            out.write_bytes(source.read_bytes())
            return "the source stores its weights as float16 already: kept as it is"
        count = narrow_fp32_weights(model)
        what = f"{count} float32 weight tensor(s) stored as float16 behind DEQUANTIZE"
    else:
        raise RequestError(f"a TFLite source converts to fp32 or fp16 on target tflite, not {quant}: "
                           "re-quantizing needs the model's ONNX, SavedModel or Keras source")
    out.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return what
