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
