"""MediaPipe's kernels (targets/mediapipe_kernels.py): the custom options of Convolution2DTransposeBias,
its output size and a numpy reference of its semantics, the table, and the host's check that lets the
rewritten kernel through for the targets that rewrite it and names the others with why they have no
rewrite. The rewrite itself runs in the toolchain images: tests/container/targets/test_mediapipe_kernels.py."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import tflite

from edgeship.convert.model_checks import check_tflite_model
from edgeship.errors import EdgeshipError
from edgeship.examples.pinned import MEDIAPIPE
from targets import mediapipe_kernels as kernels
from targets.base import RequestError
from tests.support.models import mediapipe_wheel, tflite_file

SELFIE_OPTIONS = bytes.fromhex("010000000200000002000000")  # what selfie_segmentation.tflite's kernel carries


def options(*words: int) -> bytes:
    return struct.pack(f"<{len(words)}i", *words)


def test_the_options_are_mediapipes_raw_struct():
    assert kernels.parse_transpose_conv_options(SELFIE_OPTIONS) == kernels.TransposeConvParams("SAME", 2, 2)
    assert kernels.parse_transpose_conv_options(options(2, 3, 1)) == kernels.TransposeConvParams("VALID", 3, 1)
    # newer TensorFlow appends the activation (and bias type): none is what the kernel computes
    assert kernels.parse_transpose_conv_options(options(1, 2, 2, 0, 0)) == kernels.TransposeConvParams("SAME", 2, 2)


@pytest.mark.parametrize("raw,message", [
    (b"", r"custom options of 0 bytes; MediaPipe's kernel reads 12 \(padding, stride_width, stride_height as int32\)"),
    (options(1, 2), r"custom options of 8 bytes"),
    (options(1, 2, 2) + b"\x00", r"custom options of 13 bytes"),
    (options(0, 2, 2), r"custom options padding 0, strides 2x2, then \[\]; MediaPipe's kernel takes padding 1 \(SAME\) or 2 \(VALID\)"),
    (options(1, 0, 2), r"custom options padding 1, strides 0x2"),
    (options(1, 2, 2, 1), r"custom options padding 1, strides 2x2, then \[1\]; .*nothing after"),  # a fused RELU the kernel would not apply
])
def test_malformed_options_are_one_line(raw, message):
    with pytest.raises(RequestError, match=r"^Convolution2DTransposeBias: " + message):
        kernels.parse_transpose_conv_options(raw)


@pytest.mark.parametrize("size,kernel,stride,padding,expected", [
    (128, 2, 2, "SAME", 256),  # the selfie model's last upsampling
    (5, 3, 2, "SAME", 9),  # 2*4+3 = 11, less max(0, 3-0-1) = 2
    (5, 3, 2, "VALID", 11),
    (4, 4, 2, "SAME", 8),  # 2*3+4 = 10, less 2
    (3, 1, 1, "SAME", 3),
])
def test_output_size_is_the_kernels(size, kernel, stride, padding, expected):
    assert kernels.output_size(size, kernel, stride, padding) == expected


def gathered(x, weights, bias, params):
    """MediaPipe's semantics once more, as a gather per output pixel (the reference scatters)."""
    _, height, width, _ = x.shape
    channels, kernel_h, kernel_w, _ = weights.shape
    out_h = kernels.output_size(height, kernel_h, params.stride_h, params.padding)
    out_w = kernels.output_size(width, kernel_w, params.stride_w, params.padding)
    pad_h = kernels.total_padding(height, kernel_h, params.stride_h, params.padding) // 2
    pad_w = kernels.total_padding(width, kernel_w, params.stride_w, params.padding) // 2
    out = np.tile(np.asarray(bias, np.float64), (x.shape[0], out_h, out_w, 1))
    for oy in range(out_h):
        for ox in range(out_w):
            for iy in range(height):
                for ix in range(width):
                    fy, fx = oy + pad_h - iy * params.stride_h, ox + pad_w - ix * params.stride_w
                    if 0 <= fy < kernel_h and 0 <= fx < kernel_w:
                        out[:, oy, ox] += x[:, iy, ix] @ weights[:, fy, fx, :].T
    return out


@pytest.mark.parametrize("params,kernel", [
    (kernels.TransposeConvParams("SAME", 2, 2), (2, 2)), (kernels.TransposeConvParams("SAME", 2, 2), (3, 3)),
    (kernels.TransposeConvParams("VALID", 2, 1), (3, 2)), (kernels.TransposeConvParams("SAME", 3, 2), (4, 5)),
])
def test_the_numpy_reference_computes_the_kernels_sums(params, kernel):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 5, 3))
    weights = rng.standard_normal((6, *kernel, 3))
    bias = rng.standard_normal(6)
    reference = kernels.transpose_conv_bias_reference(x, weights, bias, params)
    np.testing.assert_allclose(reference, gathered(x, weights, bias, params), rtol=1e-12, atol=1e-12)
    broken = kernels.transpose_conv_bias_reference(x, weights, np.zeros(6), params)
    assert not np.allclose(broken, gathered(x, weights, bias, params))  # the check sees the bias


def test_the_table_rewrites_one_kernel_on_rk3588_and_tflite():
    assert {kernel.name for kernel in kernels.KERNELS} == {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D",
                                                            "Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"}
    assert all(kernel.why for kernel in kernels.KERNELS)
    assert kernels.rewritten_ops("rk3588") == kernels.rewritten_ops("tflite") == ("Convolution2DTransposeBias",)
    assert kernels.rewritten_ops("jetson") == kernels.rewritten_ops("") == ()
    assert set(kernels.REWRITERS) == {kernel.name for kernel in kernels.KERNELS if kernel.rewrite}


@pytest.mark.parametrize("name", [kernel.name for kernel in kernels.KERNELS if not kernel.rewrite])
def test_a_kernel_without_a_rewrite_is_named_with_why(tmp_path, name):
    path = tflite_file(tmp_path / "mp.tflite", [tflite.BuiltinOperator.RELU, name])
    why = re.escape(kernels.BY_NAME[name].why)
    for target in ("rk3588", "tflite"):
        with pytest.raises(EdgeshipError, match=rf"mp\.tflite: target {target}'s toolchain has no kernel for custom op '{name}' "
                                                rf"\(1 node\); convert a model without it: {name} is a MediaPipe kernel with no rewrite "
                                                rf"into TFLite builtins \({why}\)"):
            check_tflite_model(path, target)


def test_the_rewritten_kernel_passes_where_it_is_rewritten_and_its_options_are_checked(tmp_path):
    path = tflite_file(tmp_path / "bare.tflite", [tflite.BuiltinOperator.RELU, "Convolution2DTransposeBias"])  # no options
    with pytest.raises(EdgeshipError, match=r"bare\.tflite: Convolution2DTransposeBias: custom options of 0 bytes; .*re-export"):
        check_tflite_model(path, "rk3588")
    with pytest.raises(EdgeshipError, match=r"target jetson's toolchain has no kernel for custom op 'Convolution2DTransposeBias' "
                                            r"\(1 node\); .*targets rk3588 and tflite rewrite into TRANSPOSE_CONV \+ ADD"):
        check_tflite_model(path, "jetson")


@pytest.fixture(scope="module")
def selfie(tmp_path_factory):
    mediapipe_wheel()  # skips only when pip cannot download it
    return MEDIAPIPE.extract("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", tmp_path_factory.mktemp("mp") / "selfie.tflite")


def test_the_selfie_model_passes_for_rk3588_and_tflite_only(selfie):
    model = tflite.Model.GetRootAsModel(selfie.read_bytes(), 0)
    graph = model.Subgraphs(0)
    custom = [graph.Operators(index) for index in range(graph.OperatorsLength())
              if model.OperatorCodes(graph.Operators(index).OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.CUSTOM]
    assert len(custom) == 1 and bytes(custom[0].CustomOptionsAsNumpy()) == SELFIE_OPTIONS
    check_tflite_model(selfie, "rk3588")
    check_tflite_model(selfie, "tflite")
    with pytest.raises(EdgeshipError, match=r"no kernel for custom op 'Convolution2DTransposeBias' \(1 node\)"):
        check_tflite_model(selfie, "coral")
