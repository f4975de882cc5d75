"""Edge TPU op placement: prediction from Coral's table, and the compiler's report.

The compiler log fixture (tests/fixtures/edgetpu/compiler_log_documented_format.txt) is in the
documented format, not output of a real compiler run: no edgetpu_compiler exists here. The
.tflite fixtures are real full-int8 models made with TensorFlow 2.19 (see that folder's README).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from targets.edgetpu_ops import OpInfo, TensorInfo, compare_with_prediction, ops_from_tflite, parse_compiler_log, predict_placement

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "edgetpu"
NO_ATTRIBUTES = {"fused_activation_function": 0, "dilation_h_factor": 1, "dilation_w_factor": 1}


# -- hand-made models -----------------------------------------------------------------------
def activation(name, shape, dtype="int8"):
    return TensorInfo(name=name, shape=list(shape), dtype=dtype, quantized=dtype in ("int8", "uint8"), constant=False)


def constant(name, shape, dtype="int8", value=None, quantized=True):
    return TensorInfo(name=name, shape=list(shape), dtype=dtype, quantized=quantized, constant=True, value=value)


class Net:
    """Builds an op list in execution order, each op reading the previous op's output."""

    def __init__(self, shape=(1, 16, 16, 3), dtype="uint8"):
        self.ops: list[OpInfo] = []
        self.last = activation("input", shape, dtype)

    def op(self, op_name, out_shape=None, out_dtype="int8", extra_inputs=(), options=None, inputs=None):
        out = activation(f"t{len(self.ops)}", out_shape or self.last.shape, out_dtype)
        self.ops.append(OpInfo(index=len(self.ops), op_name=op_name, inputs=inputs or [self.last, *extra_inputs],
                               outputs=[out], options=dict(options if options is not None else {})))
        self.last = out
        return self

    def conv(self, channels=8, op_name="CONV_2D", options=NO_ATTRIBUTES):
        shape = [*self.last.shape[:-1], channels]
        weights = constant(f"w{len(self.ops)}", [channels, 3, 3, self.last.shape[-1]])
        bias = constant(f"b{len(self.ops)}", [channels], "int32")
        return self.op(op_name, shape, extra_inputs=(weights, bias), options=options)


def int8_conv_net() -> Net:
    net = Net().op("QUANTIZE").conv().conv(op_name="DEPTHWISE_CONV_2D").op("MAX_POOL_2D", [1, 8, 8, 8], options=NO_ATTRIBUTES)
    net.op("RESHAPE", [1, 512], extra_inputs=(constant("shape", [2], "int32", [1, 512], quantized=False),))
    fc_weights, fc_bias = constant("fc_w", [4, 512]), constant("fc_b", [4], "int32")
    net.op("FULLY_CONNECTED", [1, 4], extra_inputs=(fc_weights, fc_bias), options={"weights_format": 0})
    return net.op("SOFTMAX").op("QUANTIZE", out_dtype="uint8")


def test_an_all_int8_conv_net_maps_entirely():
    prediction = predict_placement(int8_conv_net().ops)

    assert (prediction["tpu_ops"], prediction["cpu_ops"]) == (8, 0)
    assert prediction["first_cpu_op"] is None and prediction["split"] is None
    assert prediction["tpu_subgraphs"] == 1
    assert [entry["op"] for entry in prediction["ops"]] == ["QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
                                                            "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"]
    assert prediction["by_op"]["QUANTIZE"] == {"tpu": 2, "cpu": 0}
    # Documented limits that shapes cannot show are carried as caveats, not hidden.
    assert any("large tensor sizes" in caveat for caveat in prediction["ops"][4]["caveats"])


def test_a_float_op_in_the_middle_splits_there_and_everything_after_runs_on_the_cpu():
    net = Net().op("QUANTIZE").conv()
    net.op("MUL", out_dtype="float32", inputs=[activation("t1_float", [1, 16, 16, 8], "float32"),
                                                activation("scale", [1, 16, 16, 8], "float32")])
    net.conv().op("QUANTIZE", out_dtype="uint8")

    prediction = predict_placement(net.ops)

    assert [entry["placement"] for entry in prediction["ops"]] == ["tpu", "tpu", "cpu", "cpu", "cpu"]
    assert prediction["split"]["index"] == 2 and prediction["split"]["op_name"] == "MUL"
    assert "'t1_float' is float32" in prediction["split"]["reason"]
    assert prediction["ops"][3]["reason"].startswith("after the split at op 2 (MUL)")
    assert prediction["first_cpu_op"]["index"] == 2
    assert prediction["by_op"]["CONV_2D"] == {"tpu": 1, "cpu": 1}


def test_an_op_missing_from_the_table_splits_there():
    net = Net().op("QUANTIZE").conv().op("LEAKY_RELU").conv().op("QUANTIZE", out_dtype="uint8")

    prediction = predict_placement(net.ops)

    assert prediction["split"] == {"index": 2, "op_name": "LEAKY_RELU",
                                   "reason": "LEAKY_RELU is not in the Edge TPU's supported operations table"}
    assert (prediction["tpu_ops"], prediction["cpu_ops"]) == (2, 3)


def test_a_5d_tensor_splits_at_the_op_that_makes_it_unless_only_the_innermost_3_dims_exceed_1():
    shape_param = constant("shape5d", [5], "int32", [1, 2, 4, 16, 8], quantized=False)
    net = Net().op("QUANTIZE").conv().op("RESHAPE", [1, 2, 4, 16, 8], extra_inputs=(shape_param,)).op("RELU")
    prediction = predict_placement(net.ops)
    assert prediction["split"]["index"] == 2
    assert "shape [1, 2, 4, 16, 8]" in prediction["split"]["reason"]
    assert [entry["placement"] for entry in prediction["ops"]] == ["tpu", "tpu", "cpu", "cpu"]

    leading_ones = Net().op("QUANTIZE").conv().op("RESHAPE", [1, 1, 16, 16, 8], extra_inputs=(shape_param,)).op("RELU")
    assert predict_placement(leading_ones.ops)["cpu_ops"] == 0


def test_a_float_model_quantizes_its_input_on_the_cpu_and_still_maps_what_follows():
    # As compiler logs show for float-I/O models: the input QUANTIZE and the output
    # DEQUANTIZE stay on the CPU, the ops between them map.
    net = Net(dtype="float32").op("QUANTIZE").conv().conv().op("DEQUANTIZE", out_dtype="float32")

    prediction = predict_placement(net.ops)

    assert [entry["placement"] for entry in prediction["ops"]] == ["cpu", "tpu", "tpu", "cpu"]
    assert prediction["ops"][0]["reason"].startswith("quantizes the float model input on the CPU")
    assert prediction["split"]["op_name"] == "DEQUANTIZE"
    assert prediction["first_cpu_op"]["index"] == 0


def test_ops_newer_than_the_target_runtime_split():
    net = Net().op("QUANTIZE").conv().op("TRANSPOSE", extra_inputs=(constant("perm", [4], "int32", [0, 2, 1, 3], False),))

    assert predict_placement(net.ops)["cpu_ops"] == 0
    at_runtime_13 = predict_placement(net.ops, runtime_version=13)
    assert at_runtime_13["split"]["op_name"] == "TRANSPOSE"
    assert "runtime 14" in at_runtime_13["split"]["reason"]


@pytest.mark.parametrize("build, fragment", [
    (lambda n: n.op("SOFTMAX", [1, 20000], inputs=[activation("logits", [1, 20000])]), "at most 16,000"),
    (lambda n: n.op("SOFTMAX", [1, 4, 10], inputs=[activation("logits", [1, 4, 10])]), "only a 1-D input"),
    (lambda n: n.conv(options={"dilation_h_factor": 1, "dilation_w_factor": 2}), "same dilation in x and y"),
    (lambda n: n.op("MAX_POOL_2D", options={"fused_activation_function": 1}), "fused activation RELU"),
    (lambda n: n.op("MEAN", [1, 16, 16, 1], extra_inputs=(constant("axes", [1], "int32", [3], False),)), "multiple of 4"),
    (lambda n: n.op("MEAN", [1, 1, 1, 3], extra_inputs=(constant("axes", [2], "int32", [0, 1], False),)), "batch dimension"),
    (lambda n: n.op("PAD", [2, 18, 18, 3], extra_inputs=(constant("pads", [4, 2], "int32", [[0, 1], [1, 1], [1, 1], [0, 0]], False),)),
     "batch dimension"),
    (lambda n: n.op("STRIDED_SLICE", [1, 8, 16, 3], extra_inputs=(constant("begin", [4], "int32", [0, 0, 0, 0], False),
                                                                  constant("end", [4], "int32", [1, 16, 16, 3], False),
                                                                  constant("strides", [4], "int32", [1, 2, 1, 1], False)),
                    options={"ellipsis_mask": 0, "new_axis_mask": 0}), "all strides must be 1"),
    (lambda n: n.op("FULLY_CONNECTED", [1, 16, 4], extra_inputs=(constant("w", [4, 3]), constant("b", [4], "int32")),
                    options={"weights_format": 0}), "one-dimensional"),
    (lambda n: n.op("FULLY_CONNECTED", [1, 16, 16, 4], extra_inputs=(activation("runtime_w", [4, 3]), constant("b", [4], "int32")),
                    options={"weights_format": 0}), "constant at compile time"),
    (lambda n: n.op("CONCATENATION", [1, 16, 16, 9], extra_inputs=(activation("other", [1, 16, 16, 3]), constant("zeros", [1, 16, 16, 3])),
                    options={"fused_activation_function": 0}), "only as one of 2 inputs"),
])
def test_documented_limits_that_shapes_and_attributes_show_send_the_op_to_the_cpu(build, fragment):
    net = build(Net(dtype="int8"))
    prediction = predict_placement(net.ops)
    assert prediction["split"] is not None and prediction["split"]["index"] == 0, prediction["ops"]
    assert fragment in prediction["split"]["reason"]


def test_the_same_ops_within_the_limits_map():
    net = Net(shape=(1, 16, 16, 8), dtype="int8")
    net.op("MEAN", [1, 16, 16, 1], extra_inputs=(constant("axes", [1], "int32", [3], False),))  # z-reduction of 8
    net.op("MEAN", [1, 1, 1, 1], extra_inputs=(constant("axes", [2], "int32", [1, 2], False),),
           inputs=[activation("features", [1, 16, 16, 8])])
    net.op("SOFTMAX", [1, 8], inputs=[activation("logits", [1, 8])])
    net.op("PAD", [1, 18, 18, 8], extra_inputs=(constant("pads", [4, 2], "int32", [[0, 0], [1, 1], [1, 1], [0, 0]], False),),
           inputs=[activation("features", [1, 16, 16, 8])])
    prediction = predict_placement(net.ops)
    assert prediction["cpu_ops"] == 0, prediction["ops"]


def test_unread_attributes_are_caveats_not_guesses():
    net = Net(dtype="int8").conv(options=None)
    net.ops[0].options = None
    prediction = predict_placement(net.ops)
    assert prediction["ops"][0]["placement"] == "tpu"
    assert prediction["ops"][0]["caveats"] == ["dilation not checked (the op's attributes were not read)"]


# -- the compiler's report ------------------------------------------------------------------
def test_the_documented_compiler_log_is_parsed():
    """Fixture in the documented format, not output of a real compiler run."""
    compiled = parse_compiler_log((FIXTURES / "compiler_log_documented_format.txt").read_text())

    assert compiled["compiler_version"] == "16.0.384591198"
    assert compiled["model_file"] == "conv_leaky_int8.tflite"
    assert compiled["output_file"] == "conv_leaky_int8_edgetpu.tflite"
    assert compiled["operation_log"] == "conv_leaky_int8_edgetpu.log"
    assert compiled["compiled"] is True and compiled["errors"] == []
    assert (compiled["tpu_subgraphs"], compiled["total_ops"], compiled["tpu_ops"], compiled["cpu_ops"]) == (1, 10, 4, 6)
    assert len(compiled["ops"]) == 9
    assert compiled["ops"][1] == {"op": "QUANTIZE", "count": 1, "placement": "cpu",
                                  "status": "Operation is otherwise supported, but not mapped due to some unspecified limitation"}
    assert sum(row["count"] for row in compiled["ops"] if row["placement"] == "tpu") == 4


def test_the_operation_log_file_and_a_fully_mapped_run_are_parsed():
    operation_log = ("Edge TPU Compiler version 15.0.340273435\nInput: model.tflite\nOutput: model_edgetpu.tflite\n\n"
                     "Operator                       Count      Status\n\n"
                     "CONV_2D                        3          Mapped to Edge TPU\n"
                     "DEQUANTIZE                     1          Operation is working on an unsupported data type\n")
    parsed = parse_compiler_log(operation_log)
    assert (parsed["compiler_version"], parsed["model_file"], parsed["tpu_ops"], parsed["cpu_ops"]) == (
        "15.0.340273435", "model.tflite", 3, 1)

    fully_mapped = ("Edge TPU Compiler version 16.0.384591198\n\nModel compiled successfully in 9 ms.\n\n"
                    "Input model: a.tflite\nNumber of Edge TPU subgraphs: 1\nTotal number of operations: 7\n"
                    "Operation log: a_edgetpu.log\nSee the operation log file for individual operation details.\n")
    parsed = parse_compiler_log(fully_mapped)
    assert (parsed["tpu_ops"], parsed["cpu_ops"], parsed["ops"]) == (7, 0, [])


def leaky_net_as_in_the_log() -> Net:
    """The op sequence the log fixture describes: a uint8-I/O conv net with a LeakyReLU."""
    net = Net().op("QUANTIZE").conv().conv(op_name="DEPTHWISE_CONV_2D").conv().op("LEAKY_RELU").conv()
    net.op("MEAN", [1, 8], extra_inputs=(constant("axes", [2], "int32", [1, 2], False),))
    net.op("FULLY_CONNECTED", [1, 4], extra_inputs=(constant("fc_w", [4, 8]), constant("fc_b", [4], "int32")),
           options={"weights_format": 0})
    return net.op("SOFTMAX").op("QUANTIZE", out_dtype="uint8")


def test_prediction_and_compiler_report_are_compared_per_op_type():
    """Fixture in the documented format, not output of a real compiler run."""
    compiled = parse_compiler_log((FIXTURES / "compiler_log_documented_format.txt").read_text())
    prediction = predict_placement(leaky_net_as_in_the_log().ops)

    comparison = compare_with_prediction(prediction, compiled)

    assert comparison["agree"] is True
    assert comparison["tpu_ops"] == {"predicted": 4, "compiled": 4}
    assert comparison["by_op"]["CONV_2D"] == {"predicted": {"tpu": 2, "cpu": 1}, "compiled": {"tpu": 2, "cpu": 1},
                                              "compiled_status": ["2: Mapped to Edge TPU", "1: More than one subgraph is not supported"],
                                              "agree": True}

    # A compiler that mapped the LeakyReLU (it does not) would disagree exactly there and after.
    mapped_all = parse_compiler_log("Operator Count Status\n" + "\n".join(
        f"{op} {counts['tpu'] + counts['cpu']} Mapped to Edge TPU" for op, counts in prediction["by_op"].items()))
    disagreement = compare_with_prediction(prediction, mapped_all)
    assert disagreement["agree"] is False
    assert {op for op, entry in disagreement["by_op"].items() if not entry["agree"]} == {
        "CONV_2D", "FULLY_CONNECTED", "LEAKY_RELU", "MEAN", "QUANTIZE", "SOFTMAX"}
    assert disagreement["by_op"]["DEPTHWISE_CONV_2D"]["agree"] is True


def test_without_operator_rows_only_totals_are_compared():
    prediction = predict_placement(int8_conv_net().ops)
    totals_only = parse_compiler_log("Number of operations that will run on Edge TPU: 8\n"
                                     "Number of operations that will run on CPU: 0\n")
    comparison = compare_with_prediction(prediction, totals_only)
    assert comparison["agree"] is True
    assert comparison["by_op"]["SOFTMAX"]["agree"] is None


# -- real int8 TFLite models ----------------------------------------------------------------
def test_a_file_that_is_not_tflite_is_refused_in_one_line(tmp_path):
    not_a_model = tmp_path / "model.tflite"
    not_a_model.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"model\.tflite: not a TFLite flatbuffer"):
        ops_from_tflite(not_a_model)


def test_a_real_int8_conv_net_is_read_in_execution_order_and_maps_entirely():
    ops = ops_from_tflite(FIXTURES / "conv_int8.tflite")

    assert [op.op_name for op in ops] == ["QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                                          "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "QUANTIZE"]
    assert [op.index for op in ops] == list(range(10))
    model_input, conv = ops[0].inputs[0], ops[1]
    assert (model_input.dtype, model_input.shape, model_input.constant, model_input.dynamic) == ("uint8", [1, 16, 16, 3], False, False)
    weights, bias = conv.inputs[1], conv.inputs[2]
    assert (weights.dtype, weights.shape, weights.constant, weights.quantized) == ("int8", [8, 3, 3, 3], True, True)
    assert (bias.dtype, bias.constant) == ("int32", True)
    # Attributes come from the flatbuffer: Keras' relu is fused into the conv.
    assert conv.options["fused_activation_function"] == 1 and conv.options["dilation_h_factor"] == 1
    assert ops[-1].outputs[0].dtype == "uint8"

    prediction = predict_placement(ops)
    assert (prediction["tpu_ops"], prediction["cpu_ops"], prediction["split"]) == (10, 0, None)


def test_a_real_model_with_a_leaky_relu_splits_there_as_the_documented_log_says():
    """Fixture log in the documented format, not output of a real compiler run."""
    prediction = predict_placement(ops_from_tflite(FIXTURES / "conv_leaky_int8.tflite"))

    assert prediction["split"]["index"] == 4 and prediction["split"]["op_name"] == "LEAKY_RELU"
    assert [entry["placement"] for entry in prediction["ops"]] == ["tpu"] * 4 + ["cpu"] * 6
    compiled = parse_compiler_log((FIXTURES / "compiler_log_documented_format.txt").read_text())
    assert compare_with_prediction(prediction, compiled)["agree"] is True


def test_a_real_model_with_a_float_island_splits_at_its_dequantize():
    ops = ops_from_tflite(FIXTURES / "conv_float_island.tflite")
    sin = next(op for op in ops if op.op_name == "SIN")
    assert sin.inputs[0].dtype == "float32" and not sin.inputs[0].quantized

    prediction = predict_placement(ops)

    assert prediction["split"] == {"index": 4, "op_name": "DEQUANTIZE",
                                   "reason": "DEQUANTIZE is not in the Edge TPU's supported operations table"}
    assert prediction["by_op"]["CONV_2D"] == {"tpu": 2, "cpu": 1}
    assert prediction["by_op"]["QUANTIZE"] == {"tpu": 1, "cpu": 2}
