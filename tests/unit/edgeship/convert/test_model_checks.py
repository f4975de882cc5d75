"""Host-side model checks on tiny real ONNX and TFLite files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import tflite
from onnx import TensorProto, helper

import targets
from edgeship.convert.model_checks import LITERT_BUILTIN_CUSTOM_OPS, check_onnx_model, check_tflite_model, external_data_files
from edgeship.errors import EdgeshipError
from tests.support.models import external_model, onnx_file, tflite_file


def check(path: Path, target: str) -> None:
    proto = onnx.load(str(path), load_external_data=False)
    row = targets.get(target)
    check_onnx_model(path, proto, target, row.onnx_opsets, row.onnx_domains)


def test_a_plain_model_with_paddle_names_passes_every_target(tmp_path):
    # Names like Softmax@0 are fixed inside the image (targets.graph), not refused here.
    path = onnx_file(tmp_path / "ok.onnx", [helper.make_node("Softmax", ["x"], ["y"], name="Softmax@0")])
    for target in targets.TARGETS:
        check(path, target)


def test_custom_domain_ops_are_named_with_their_count_and_the_fix(tmp_path):
    path = onnx_file(tmp_path / "custom.onnx", [helper.make_node("Relu", ["x"], ["a"]),
                                                helper.make_node("Det2", ["a"], ["b"], domain="com.example"),
                                                helper.make_node("Det2", ["b"], ["y"], domain="com.example")], domains=["com.example"])
    for target in ("tflite", "rk3588", "jetson", "onnx"):
        with pytest.raises(EdgeshipError, match=rf"custom\.onnx: target {target} cannot run operators from custom domains: "
                                                rf"Det2 \(domain 'com\.example', 2 nodes\); re-export the model with standard ONNX operators only"):
            check(path, target)


def test_onnx_runtime_contrib_ops_pass_the_onnx_target_only(tmp_path):
    path = onnx_file(tmp_path / "gelu.onnx", [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], domains=["com.microsoft"])
    check(path, "onnx")
    with pytest.raises(EdgeshipError, match=r"gelu\.onnx: target tflite cannot run .*Gelu \(domain 'com\.microsoft', 1 node\)"):
        check(path, "tflite")


def test_a_model_local_function_is_not_a_custom_op(tmp_path):
    function = helper.make_function("com.example", "DoubleRelu", ["a"], ["b"],
                                    [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Add", ["r", "r"], ["b"])],
                                    [helper.make_opsetid("", 13)])
    path = onnx_file(tmp_path / "fn.onnx", [helper.make_node("DoubleRelu", ["x"], ["y"], domain="com.example")],
                     domains=["com.example"], functions=[function])
    check(path, "tflite")


def test_custom_ops_inside_subgraphs_are_found(tmp_path):
    branch = helper.make_graph([helper.make_node("Secret", ["x"], ["z"], domain="com.example")], "then", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    plain = helper.make_graph([helper.make_node("Neg", ["x"], ["w"])], "else", [], [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4])])
    path = onnx_file(tmp_path / "if.onnx", [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=plain)],
                     inputs=[helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                     domains=["com.example"])
    with pytest.raises(EdgeshipError, match=r"Secret \(domain 'com\.example', 1 node\)"):
        check(path, "jetson")


def test_an_opset_too_old_names_the_range_and_version_converter(tmp_path):
    path = onnx_file(tmp_path / "old.onnx", [helper.make_node("Relu", ["x"], ["y"])], opset=6, ir_version=3)
    for target, (low, high) in ((name, row.onnx_opsets) for name, row in targets.TARGETS.items()):
        fix = rf"convert it with onnx\.version_converter\.convert_version\(model, {low}\) or re-export with opset_version={low}"
        with pytest.raises(EdgeshipError, match=rf"old\.onnx: opset 6 is older than target {target} reads \(opsets {low}-{high}\); {fix}"):
            check(path, target)


def test_an_opset_too_new_names_the_range_and_the_export_setting(tmp_path):
    path = onnx_file(tmp_path / "new.onnx", [helper.make_node("Relu", ["x"], ["y"])], opset=23, ir_version=11)
    for target in ("jetson", "rk3588"):
        low, high = targets.get(target).onnx_opsets
        with pytest.raises(EdgeshipError, match=rf"new\.onnx: opset 23 is newer than target {target} reads \(opsets {low}-{high}\); "
                                                rf"re-export with opset_version={high}"):
            check(path, target)
    check(path, "onnx")  # ONNX Runtime 1.23 reads opset 23
    check(path, "tflite")


def test_an_input_of_a_dtype_edgeship_does_not_carry_is_refused_with_its_type(tmp_path):
    path = onnx_file(tmp_path / "i16.onnx", [helper.make_node("Cast", ["image"], ["y"], to=TensorProto.FLOAT)],
                     inputs=[helper.make_tensor_value_info("image", TensorProto.INT16, [1, 4])])
    with pytest.raises(EdgeshipError, match=r"i16\.onnx: input 'image' is of type INT16; edgeship carries float32, uint8, int32, int64, "
                                            r"bool inputs, so export with one of those"):
        check(path, "onnx")
    # uint8 is carried (which targets feed it is request.check_input_dtypes' question)
    check(onnx_file(tmp_path / "u8.onnx", [helper.make_node("Cast", ["image"], ["y"], to=TensorProto.FLOAT)],
                    inputs=[helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4])]), "onnx")


def test_external_data_files_lists_what_the_model_reads(tmp_path):
    path = external_model(tmp_path)
    assert external_data_files(path, onnx.load(str(path), load_external_data=False)) == [(tmp_path / "ext.weights").resolve()]
    check(path, "tflite")
    plain = onnx_file(tmp_path / "inline.onnx", [helper.make_node("Relu", ["x"], ["y"])])
    assert external_data_files(plain, onnx.load(str(plain))) == []


def test_a_missing_external_data_file_names_the_file_and_the_tensor(tmp_path):
    path = external_model(tmp_path)
    (tmp_path / "ext.weights").unlink()
    with pytest.raises(EdgeshipError, match=r"ext\.onnx: tensor 'dense\.weight' keeps its data in .*ext\.weights, which does not exist; "
                                            r"put ext\.weights next to the model"):
        check(path, "onnx")


def test_a_truncated_external_data_file_is_refused(tmp_path):
    path = external_model(tmp_path)
    data = tmp_path / "ext.weights"
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(EdgeshipError, match=r"tensor 'dense\.weight' needs bytes 0-64 of .*ext\.weights, which has 10; the file is truncated"):
        external_data_files(path, onnx.load(str(path), load_external_data=False))


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = external_model(folder)
    proto = onnx.load(str(path), load_external_data=False)
    (folder / "ext.weights").rename(tmp_path / "ext.weights")
    next(entry for entry in proto.graph.initializer[0].external_data if entry.key == "location").value = "../ext.weights"
    with pytest.raises(EdgeshipError, match=r"keeps its data at '\.\./ext\.weights', but ONNX reads external data only from files inside "
                                            r"the model's folder; move the file next to the model"):
        external_data_files(path, proto)


def test_the_test_flatbuffers_are_real_tflite_models(tmp_path):
    # LiteRT runs the builtin one and refuses the custom op: the files are honest TFLite.
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    relu = tflite_file(tmp_path / "relu.tflite", [tflite.BuiltinOperator.RELU])
    interpreter = interpreter_module.Interpreter(model_path=str(relu))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.array([[-1, 2, -3, 4]], np.float32))
    interpreter.invoke()
    np.testing.assert_array_equal(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), [[0, 2, 0, 4]])
    custom = tflite_file(tmp_path / "custom.tflite", [tflite.BuiltinOperator.RELU, "Convolution2DTransposeBias"])
    with pytest.raises(RuntimeError, match="unresolved custom op: Convolution2DTransposeBias"):
        interpreter_module.Interpreter(model_path=str(custom)).allocate_tensors()


def test_a_builtin_only_tflite_model_passes(tmp_path):
    check_tflite_model(tflite_file(tmp_path / "relu.tflite", [tflite.BuiltinOperator.RELU, tflite.BuiltinOperator.LOGISTIC]), "rk3588")


def test_mediapipe_custom_ops_are_named_with_the_fix(tmp_path):
    path = tflite_file(tmp_path / "selfie.tflite", ["Convolution2DTransposeBias", tflite.BuiltinOperator.RELU, "MaxPoolingWithArgmax2D",
                                                    "Convolution2DTransposeBias"])
    with pytest.raises(EdgeshipError, match=r"selfie\.tflite: target jetson's toolchain has no kernel for custom ops "
                                            r"'Convolution2DTransposeBias' \(2 nodes\), 'MaxPoolingWithArgmax2D' \(1 node\); "
                                            r"convert a model without them: Convolution2DTransposeBias is a MediaPipe kernel that targets "
                                            r"rk3588 and tflite rewrite into TRANSPOSE_CONV \+ ADD: convert for one of them"):
        check_tflite_model(path, "jetson")


def test_flex_ops_name_the_select_tf_ops_setting(tmp_path):
    path = tflite_file(tmp_path / "flex.tflite", ["FlexErf"])
    with pytest.raises(EdgeshipError, match=r"flex\.tflite: the target's toolchain has no kernel for custom op 'FlexErf' \(1 node\); "
                                            r"convert a model without it: FlexErf is a TensorFlow op .*TFLITE_BUILTINS"):
        check_tflite_model(path)


def test_custom_ops_a_toolchain_has_pass(tmp_path):
    path = tflite_file(tmp_path / "ssd.tflite", [tflite.BuiltinOperator.RELU, "TFLite_Detection_PostProcess"])
    check_tflite_model(path, "litert", allowed_custom_ops=LITERT_BUILTIN_CUSTOM_OPS)
    with pytest.raises(EdgeshipError, match="custom op 'TFLite_Detection_PostProcess'"):
        check_tflite_model(path, "rk3588")


def test_a_damaged_tflite_file_is_refused(tmp_path):
    good = tflite_file(tmp_path / "relu.tflite", [tflite.BuiltinOperator.RELU]).read_bytes()
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(good[:12])
    with pytest.raises(EdgeshipError, match=r"damaged\.tflite is not a readable TFLite flatbuffer .*; export it again"):
        check_tflite_model(damaged)
    (tmp_path / "other.tflite").write_bytes(b"\x00" * 32)
    with pytest.raises(EdgeshipError, match=r"other\.tflite is not a TFLite flatbuffer \(no TFL3 identifier"):
        check_tflite_model(tmp_path / "other.tflite")
