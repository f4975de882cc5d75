"""Bad-input corpus, family `convert`: TFLite sources calling MediaPipe kernels that no target rewrites
(targets/mediapipe_kernels.py), and a Convolution2DTransposeBias whose custom options the rewrite
cannot read. Each is one line naming the file, the op and the fix, exit 2, before any container
starts; nothing is written."""

from __future__ import annotations

import pytest
import tflite

from targets import mediapipe_kernels
from tests.support.badinput import assert_one_clean_line, invoke_cli
from tests.support.models import tflite_file

PREFIX = "edgeship: error: "
# (kind, target, the custom ops of the file, what the one line must say)
CASES = [
    *[(f"MediaPipe kernel {kernel.name} on {target}", target, [kernel.name],
       rf"mp\.tflite: target {target}'s toolchain has no kernel for custom op '{kernel.name}' \(1 node\); convert a model without it: "
       rf"{kernel.name} is a MediaPipe kernel with no rewrite into TFLite builtins")
      for kernel in mediapipe_kernels.KERNELS if not kernel.rewrite for target in ("rk3588", "tflite")],
    ("Convolution2DTransposeBias without its options", "rk3588", ["Convolution2DTransposeBias"],
     r"mp\.tflite: Convolution2DTransposeBias: custom options of 0 bytes; MediaPipe's kernel reads 12 .*re-export the model$"),
    ("a rewritten kernel beside one without a rewrite", "tflite", ["Convolution2DTransposeBias", "MaxUnpooling2D"],
     r"no kernel for custom op 'MaxUnpooling2D' \(1 node\)"),
]
KINDS = [("convert", kind) for kind, _, _, _ in CASES]  # counted by tests/unit/test_bad_input_corpus.py


@pytest.mark.parametrize("kind,target,ops,message", CASES, ids=[case[0] for case in CASES])
def test_a_mediapipe_kernel_is_one_clean_line(tmp_path, kind, target, ops, message):
    model = tflite_file(tmp_path / "mp.tflite", [tflite.BuiltinOperator.RELU, *ops])
    out = tmp_path / "out"
    result = invoke_cli("convert", "--target", target, "--model", str(model), "--out", str(out))
    assert_one_clean_line(result, PREFIX, message)
    assert result.returncode == 2
    assert not out.exists() or not any(out.iterdir())
