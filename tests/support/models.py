"""Tiny real model files for tests: ONNX graphs from onnx.helper, TFLite flatbuffers from the
TFLite schema's generated builder (the `tflite` package)."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper


def onnx_file(path: Path, nodes, *, opset: int = 13, inputs=None, initializers=(), domains=(), ir_version: int = 8, functions=()) -> Path:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(domain, 1) for domain in domains]
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, functions=list(functions)), str(path))
    return path


def external_model(folder: Path) -> Path:
    weight = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "dense.weight")
    path = onnx_file(folder / "ext.onnx", [helper.make_node("MatMul", ["x", "dense.weight"], ["y"])], initializers=[weight])
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    return path


def tflite_file(path: Path, ops: list) -> Path:
    """A TFLite flatbuffer chaining `ops` (BuiltinOperator codes, or custom op names) on a
    [1, 4] float tensor, written with the `tflite` package's generated builder functions."""
    builder = flatbuffers.Builder(1024)

    def vector(start, items, prepend):
        start(builder, len(items))
        for item in reversed(items):
            prepend(item)
        return builder.EndVector()

    codes = []
    for op in ops:
        custom = builder.CreateString(op) if isinstance(op, str) else None
        code = tflite.BuiltinOperator.CUSTOM if isinstance(op, str) else op
        tflite.OperatorCodeStart(builder)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, min(code, tflite.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES))
        tflite.OperatorCodeAddBuiltinCode(builder, code)
        if custom is not None:
            tflite.OperatorCodeAddCustomCode(builder, custom)
        tflite.OperatorCodeAddVersion(builder, 1)
        codes.append(tflite.OperatorCodeEnd(builder))
    tensors = []
    for index in range(len(ops) + 1):
        name = builder.CreateString(f"t{index}")
        shape = vector(tflite.TensorStartShapeVector, [1, 4], builder.PrependInt32)
        tflite.TensorStart(builder)
        tflite.TensorAddShape(builder, shape)
        tflite.TensorAddType(builder, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(builder, 0)
        tflite.TensorAddName(builder, name)
        tensors.append(tflite.TensorEnd(builder))
    operators = []
    for index in range(len(ops)):
        inputs = vector(tflite.OperatorStartInputsVector, [index], builder.PrependInt32)
        outputs = vector(tflite.OperatorStartOutputsVector, [index + 1], builder.PrependInt32)
        tflite.OperatorStart(builder)
        tflite.OperatorAddOpcodeIndex(builder, index)
        tflite.OperatorAddInputs(builder, inputs)
        tflite.OperatorAddOutputs(builder, outputs)
        operators.append(tflite.OperatorEnd(builder))
    tensor_vector = vector(tflite.SubGraphStartTensorsVector, tensors, builder.PrependUOffsetTRelative)
    operator_vector = vector(tflite.SubGraphStartOperatorsVector, operators, builder.PrependUOffsetTRelative)
    graph_inputs = vector(tflite.SubGraphStartInputsVector, [0], builder.PrependInt32)
    graph_outputs = vector(tflite.SubGraphStartOutputsVector, [len(ops)], builder.PrependInt32)
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, graph_inputs)
    tflite.SubGraphAddOutputs(builder, graph_outputs)
    tflite.SubGraphAddOperators(builder, operator_vector)
    subgraph = tflite.SubGraphEnd(builder)
    tflite.BufferStart(builder)
    empty_buffer = tflite.BufferEnd(builder)  # buffer 0: the schema's "no data" sentinel
    code_vector = vector(tflite.ModelStartOperatorCodesVector, codes, builder.PrependUOffsetTRelative)
    subgraph_vector = vector(tflite.ModelStartSubgraphsVector, [subgraph], builder.PrependUOffsetTRelative)
    buffer_vector = vector(tflite.ModelStartBuffersVector, [empty_buffer], builder.PrependUOffsetTRelative)
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, code_vector)
    tflite.ModelAddSubgraphs(builder, subgraph_vector)
    tflite.ModelAddBuffers(builder, buffer_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


PLANTED_SIZE = 16


def planted_model(path: Path, seed: int = 0) -> Path:
    """Conv -> ReLU -> Conv ('planted') -> ReLU -> Conv, 3x16x16 in, 4x16x16 out.

    The planted Conv reads channel 7 of the first ReLU with a weight of 1000, and that channel is
    zero on every input (its bias is -100), so in float the weight does nothing. In int8 (per-output
    -channel weights) it sets the scale of every output channel's weights, and the real weights
    (~0.2) all round to zero: the planted layer's output, and so the model's, is ruined. Any other
    layer quantizes fine, and keeping the planted layer alone float restores the model."""
    rng = np.random.default_rng(seed)
    first_w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    first_b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    first_b[7] = -100.0
    planted_w = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)
    planted_w[:, 7, 1, 1] = 1000.0
    planted_b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    last_w = (rng.standard_normal((4, 8, 3, 3)) * 0.2).astype(np.float32)
    last_b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    weights = [numpy_helper.from_array(value, name) for value, name in ((first_w, "w1"), (first_b, "b1"), (planted_w, "w2"),
                                                                        (planted_b, "b2"), (last_w, "w3"), (last_b, "b3"))]
    pads = [1, 1, 1, 1]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=pads),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="planted", pads=pads),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["output"], name="conv3", pads=pads)]
    graph = helper.make_graph(nodes, "planted", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, PLANTED_SIZE, PLANTED_SIZE])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, PLANTED_SIZE, PLANTED_SIZE])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgeship-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def planted_inputs(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 3, PLANTED_SIZE, PLANTED_SIZE)).astype(np.float32)


def mediapipe_wheel():
    """The pinned mediapipe wheel (edgeship.examples.pinned.MEDIAPIPE), fetched once per machine; a
    test that needs it is skipped only when pip cannot download it."""
    import pytest

    from edgeship.errors import EdgeshipError
    from edgeship.examples.pinned import MEDIAPIPE

    try:
        MEDIAPIPE.fetch()
    except EdgeshipError as error:
        if "could not download" in str(error):
            pytest.skip(f"the MediaPipe models cannot be had here: {error}")
        raise
    return MEDIAPIPE
