"""Bad-input corpus, family `convert`: declared batch axes and carried state (issue 27, item 1), given
to `invoke convert`. Each ends in one line naming the value and the fix, exit 2, no traceback,
before any container starts, and nothing is written under --out."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.badinput import assert_one_clean_line, invoke_cli
from tests.support.models import planted_model
from tests.support.stateful_models import tiny_stateful

PREFIX = "edgeship: error: "
NAMED = ["--target", "onnx", "--model", "{d}/named.onnx", "--input-shape", "x:1,4", "--input-shape", "state:2,1,4"]
STATIC = ["--target", "onnx", "--model", "{d}/static.onnx"]

# (kind, arguments after `invoke convert`, what the one line must say)
CASES = [
    ("--batch-axis not NAME:AXIS", [*STATIC, "--batch-axis", "state:one"],
     r"--batch-axis 'state:one' is not NAME:AXIS with AXIS a dimension's index or 'none'; write e\.g\. --batch-axis state:1$"),
    ("--batch-axis with a digit int() refuses", [*STATIC, "--batch-axis", "state:\u00b2"],
     r"--batch-axis 'state:\u00b2' is not NAME:AXIS with AXIS a dimension's index or 'none'; write e\.g\. --batch-axis state:1$"),
    ("--batch-axis of an unknown input", [*STATIC, "--batch-axis", "h:1"],
     r"--batch-axis names 'h', but .*static\.onnx has inputs \['state', 'x'\]; use one of those names$"),
    ("--batch-axis outside the shape", [*STATIC, "--batch-axis", "state:3"],
     r"--batch-axis state:3 is outside input 'state' of shape \[2, 1, 4\] \(axes 0 to 2\); give the axis the batch is on, or none$"),
    ("--batch-axis on a dimension that is not 1", [*STATIC, "--batch-axis", "state:0"],
     r"--batch-axis state:0: input 'state' has 2 there in its shape \[2, 1, 4\]; a sample holds a batch of 1, so pass --input-shape "
     r"with 1 on axis 0$"),
    ("--state not OUTPUT:INPUT", [*STATIC, "--state", "stateN"],
     r"--state 'stateN' is not OUTPUT:INPUT \(the output whose value feeds that input at the next step\); write e\.g\. --state "
     r"stateN:state$"),
    ("--state of an unknown output", [*STATIC, "--state", "hn:state"],
     r"--state hn:state: .*static\.onnx has no output 'hn' \(its outputs: \['out', 'stateN'\]\); name one of them$"),
    ("--state into an unknown input", [*STATIC, "--state", "stateN:h"],
     r"--state stateN:h: .*static\.onnx has no input 'h' \(its inputs: \['state', 'x'\]\); name one of them$"),
    ("--state pairing shapes that differ", [*STATIC, "--state", "out:state"],
     r"--state out:state: output 'out' of shape \[1, 4\] cannot feed input 'state' of shape \[2, 1, 4\]; pair an output with the "
     r"input of its shape$"),
    ("eval sequences without a state", ["--target", "onnx", "--model", "{d}/plain.onnx", "--eval", "{d}/plain_sequences.npz"],
     r"evaluation set .*plain_sequences\.npz has sequence_lengths, but the model feeds no state back \(no output pairs with an input\); "
     r"drop the key, or declare the pair with --state OUTPUT:INPUT$"),
    ("eval sequence lengths that do not sum to the steps", [*STATIC, "--eval", "{d}/short_lengths.npz"],
     r"evaluation set .*short_lengths\.npz: sequence_lengths \[3, 3\] sums to 6 over 2 sequences, but the inputs hold 7 steps and the "
     r"state inputs \['state'\] \[2\] initial values; give the steps' count and one initial state per sequence$"),
    ("eval with one initial state for two sequences", [*STATIC, "--eval", "{d}/one_start.npz"],
     r"one_start\.npz: sequence_lengths \[4, 3\] sums to 7 over 2 sequences, but .* \[1\] initial values"),
    ("eval sequence lengths that are not positive integers", [*STATIC, "--eval", "{d}/float_lengths.npz"],
     r"float_lengths\.npz: sequence_lengths is float64 of shape \[2\]; it must be positive integers \[S\], the steps of each sequence "
     r"in order$"),
    ("eval sequence lengths more than the steps", [*STATIC, "--eval", "{d}/many_lengths.npz"],
     r"many_lengths\.npz: sequence_lengths has shape \[8\]; it must be \[S\], one length per sequence, S at most the 7 steps the "
     r"inputs hold$"),
    ("eval state stacked on another axis", [*NAMED, "--eval", "{d}/state_on_axis_0.npz"],
     r"state_on_axis_0\.npz: array 'state' has shape \[5, 2, 1, 4\], needs \[2, N, 4\]; stack samples on axis 1$"),
]
KINDS = [("convert", kind) for kind, _, _ in CASES]  # counted by tests/unit/test_bad_input_corpus.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("state")
    tiny_stateful(d / "named.onnx")
    tiny_stateful(d / "static.onnx", batch=1)
    planted_model(d / "plain.onnx")
    x7, state = np.zeros((7, 4), np.float32), np.zeros((2, 2, 1, 4), np.float32)
    np.savez(d / "short_lengths.npz", x=x7, state=state, sequence_lengths=np.array([3, 3]))
    np.savez(d / "one_start.npz", x=x7, state=state[:1], sequence_lengths=np.array([4, 3]))
    np.savez(d / "float_lengths.npz", x=x7, state=state, sequence_lengths=np.array([4.0, 3.0]))
    np.savez(d / "many_lengths.npz", x=x7, state=state, sequence_lengths=np.ones(8, np.int64))
    np.savez(d / "state_on_axis_0.npz", x=np.zeros((5, 4), np.float32), state=np.zeros((5, 2, 1, 4), np.float32))
    import onnx

    plain = onnx.load(str(d / "plain.onnx")).graph.input[0]
    shape = [dim.dim_value or 1 for dim in plain.type.tensor_type.shape.dim]
    np.savez(d / "plain_sequences.npz", **{plain.name: np.zeros([2, *shape[1:]], np.float32)}, sequence_lengths=np.array([2]))
    return d


@pytest.mark.parametrize("kind,args,message", CASES, ids=[case[0] for case in CASES])
def test_axis_and_state_mistakes_are_one_line(folder, kind, args, message):
    out = folder / "out"
    result = invoke_cli("convert", *[arg.format(d=folder) for arg in args], "--out", str(out))
    assert_one_clean_line(result, PREFIX, message)
    assert result.returncode == 2
    assert not out.exists() or not any(out.iterdir())
