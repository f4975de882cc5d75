"""targets/onnx_speed.py: the float rewrites before int8 keep the graph's outputs (ONNX Runtime runs
both), remove the patterns they name, and leave alone what they cannot fold exactly."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from targets.onnx_speed import fold_conv_affine, fuse_hard_swish, speed_up

RNG = np.random.default_rng(0)
CHANNELS = 4


def constant(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def graph(nodes: list, initializers: list, outputs: tuple[str, ...] = ("y",), opset: int = 13) -> onnx.ModelProto:
    """x [1,3,8,8] -> nodes -> outputs, with a 3x3 Conv `conv` (x -> c) among the initializers."""
    weights = [constant("w", RNG.normal(size=(CHANNELS, 3, 3, 3))), constant("b", RNG.normal(size=CHANNELS))]
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
    model = helper.make_model(helper.make_graph(
        [conv, *nodes], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, CHANNELS, 8, 8]) for name in outputs], [*weights, *initializers]),
        opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def hard_swish(source: str, out: str, prefix: str) -> tuple[list, list]:
    """x * Clip(x + 3, 0, 6) / 6, as Paddle and PyTorch export it."""
    nodes = [helper.make_node("Add", [source, f"{prefix}3"], [f"{prefix}a"], name=f"{prefix}add"),
             helper.make_node("Clip", [f"{prefix}a", f"{prefix}0", f"{prefix}6"], [f"{prefix}c"], name=f"{prefix}clip"),
             helper.make_node("Mul", [source, f"{prefix}c"], [f"{prefix}m"], name=f"{prefix}mul"),
             helper.make_node("Div", [f"{prefix}m", f"{prefix}6"], [out], name=f"{prefix}div")]
    return nodes, [constant(f"{prefix}3", 3.0), constant(f"{prefix}0", 0.0), constant(f"{prefix}6", 6.0)]


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def ops(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def lcnet_block() -> onnx.ModelProto:
    """PP-LCNetV3's pattern: Conv -> scalar Mul -> per-channel Add -> HardSwish."""
    affine = [helper.make_node("Mul", ["c", "scale"], ["s"], name="scale_mul"), helper.make_node("Add", ["s", "shift"], ["h"], name="shift_add")]
    swish, swish_constants = hard_swish("h", "y", "hs_")
    return graph([*affine, *swish], [constant("scale", 0.7), constant("shift", RNG.normal(size=(CHANNELS, 1, 1))), *swish_constants])


def test_an_lcnet_block_becomes_one_conv_and_one_hard_swish_with_the_same_outputs():
    model = lcnet_block()
    x = RNG.normal(size=(1, 3, 8, 8)).astype(np.float32) * 3
    before = run(model, x)[0]
    fast, done = speed_up(model)
    assert done == {"conv_affine_folded": 2, "hard_swish_fused": 1}
    assert ops(fast) == Counter({"Conv": 1, "HardSwish": 1})
    assert next(entry.version for entry in fast.opset_import if entry.domain == "") == 14  # HardSwish's first opset
    onnx.checker.check_model(fast)
    np.testing.assert_allclose(run(fast, x)[0], before, rtol=1e-5, atol=1e-5)


def test_a_conv_output_read_twice_or_a_graph_output_is_not_folded():
    read_twice = graph([helper.make_node("Mul", ["c", "scale"], ["y"], name="mul"), helper.make_node("Relu", ["c"], ["r"], name="relu")],
                       [constant("scale", 2.0)], outputs=("y", "r"))
    assert fold_conv_affine(read_twice) == 0
    conv_out = graph([helper.make_node("Mul", ["c", "scale"], ["y"], name="mul")], [constant("scale", 2.0)], outputs=("y", "c"))
    assert fold_conv_affine(conv_out) == 0


def test_a_constant_that_is_not_per_channel_is_not_folded():
    per_pixel = graph([helper.make_node("Mul", ["c", "scale"], ["y"], name="mul")], [constant("scale", RNG.normal(size=(1, 1, 8, 8)))])
    assert fold_conv_affine(per_pixel) == 0
    assert ops(per_pixel)["Mul"] == 1


@pytest.mark.parametrize("bounds", [(0.0, 5.0), (-1.0, 6.0)])
def test_a_clip_that_is_not_0_to_6_is_no_hard_swish(bounds):
    nodes, constants = hard_swish("c", "y", "hs_")
    constants[1], constants[2] = constant("hs_0", bounds[0]), constant("hs_6", bounds[1])
    nodes[3] = helper.make_node("Div", ["hs_m", "six"], ["y"], name="hs_div")
    model = graph(nodes, [*constants, constant("six", 6.0)], opset=14)
    assert fuse_hard_swish(model) == 0
    assert ops(model)["Clip"] == 1


def test_a_hard_swish_on_a_tensor_read_elsewhere_keeps_the_other_reader():
    nodes, constants = hard_swish("c", "y", "hs_")
    model = graph([*nodes, helper.make_node("Relu", ["c"], ["r"], name="relu")], constants, outputs=("y", "r"), opset=14)
    x = RNG.normal(size=(1, 3, 8, 8)).astype(np.float32) * 3
    before = run(model, x)
    assert fuse_hard_swish(model) == 1
    onnx.checker.check_model(model)
    for got, want in zip(run(model, x), before):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def affine_before(pads: list[int]) -> onnx.ModelProto:
    """Conv -> Relu -> Mul(per channel) -> Add(scalar) -> Conv with `pads`: the affine after an activation."""
    nodes = [helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Mul", ["scale", "r"], ["s"], name="scale_mul"),
             helper.make_node("Add", ["s", "shift"], ["h"], name="shift_add"),
             helper.make_node("Conv", ["h", "w2", "b2"], ["y"], name="next", pads=pads)]
    size = 1 + 2 * pads[0]
    return graph(nodes, [constant("scale", RNG.normal(size=(1, CHANNELS, 1, 1))), constant("shift", -0.4),
                         constant("w2", RNG.normal(size=(CHANNELS, CHANNELS, size, size))), constant("b2", RNG.normal(size=CHANNELS))])


def test_an_affine_before_an_unpadded_conv_goes_into_its_weights_and_bias():
    model = affine_before([0, 0, 0, 0])
    x = RNG.normal(size=(1, 3, 8, 8)).astype(np.float32)
    before = run(model, x)[0]
    fast, done = speed_up(model)
    assert done == {"conv_affine_folded": 2, "hard_swish_fused": 0}
    assert ops(fast) == Counter({"Conv": 2, "Relu": 1})
    onnx.checker.check_model(fast)
    np.testing.assert_allclose(run(fast, x)[0], before, rtol=1e-5, atol=1e-5)


def test_an_affine_before_a_padded_conv_stays():
    """The shift would have to reach the zero-padded border too, which the bias cannot say."""
    model = affine_before([1, 1, 1, 1])
    assert speed_up(model)[1]["conv_affine_folded"] == 0
