"""The bad-input corpus's shared rule: a command given a bad input ends, within its bound, with
exactly one line on stderr that starts with the tool's prefix, a non-zero exit, no traceback.

Each corpus module lists its cases in a module-level `KINDS` list of (family, kind) pairs;
tests/unit/test_bad_input_corpus.py counts them across modules (the issue asks for 120 kinds)
and checks that the README names every family.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeship.paths import REPO_ROOT

BOUND_S = 120  # no bad input may take longer than this to be refused


def onnx_with_external_data(path: Path, location: str, input_name: str = "input", output_name: str = "logits") -> None:
    """A real ONNX model at `path` (whatever its name) multiplying its input by one weight that it
    keeps in the external-data file `location`: what a crafted artifact uses to make a runtime open
    a file of the crafter's choosing."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 1, 8, 8])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 1, 8, 8])
    weight = numpy_helper.from_array(np.array([0.0], dtype=np.float32), "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "4")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Mul", [input_name, "w"], [output_name])], "g", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def run_bounded(argv: list[str], cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """Run argv with its output captured; a run past bound_s fails the test as a hang."""
    full_env = {**os.environ, **(env or {})}
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=bound_s, env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(argv)} hung: still running after {bound_s} s") from None


def runtime_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """`edgeship-runtime ARGS` as a board runs it."""
    return run_bounded([sys.executable, "-m", "edgeship_runtime.cli", *args], cwd=cwd, env=env, bound_s=bound_s)


def invoke_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """`invoke TASK ARGS` as a user runs it."""
    return run_bounded([sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, bound_s=bound_s)


LAST_RESORT_EXIT = 3  # tasks.py's and edgeship-runtime's handler of an error nobody checked for
LAST_RESORT_WORDS = ("(a bug", "a bug in edgeship")


def assert_one_clean_line(result: subprocess.CompletedProcess, prefix: str, pattern: str | None = None, allow_bug: bool = False) -> str:
    """The rule every bad input must meet; returns the line. The last resort's line (exit 3, "a
    bug") is one clean line too, but it means no check caught the input: it fails the rule unless
    the test says it expects the last resort (allow_bug=True)."""
    import re

    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode != 0, f"exit 0 on bad input; stdout: {result.stdout[-1000:]}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines[-20:])
    assert lines[0].startswith(prefix), lines[0]
    if not allow_bug:
        assert result.returncode != LAST_RESORT_EXIT and not any(words in lines[0] for words in LAST_RESORT_WORDS), (
            f"the last resort answered (exit {result.returncode}): no check caught this input: {lines[0]}")
    if pattern:
        assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module", name="good")
def good_artifact(tmp_path_factory) -> Path:
    """`good`: a real tiny artifact, made once per module, that a corpus module damages copies of
    (import it into the module: `from tests.support.badinput import good_artifact  # noqa: F401`)."""
    from tests.support.artifacts import tiny_artifact

    return tiny_artifact(tmp_path_factory.mktemp("good") / "artifact")


DAMAGES = ("list", "truncated")


def damaged_artifact(good: Path, folder: Path, how: str) -> Path:
    """A copy of `good` in folder/damaged. "list": its manifest is a JSON list. "truncated": its
    model cut in half, the manifest's hashes made anew, so the damage passes the file check and
    reaches the runtime's own loader."""
    import json
    import shutil

    from tests.support.artifacts import write_manifest

    if how not in DAMAGES:
        raise ValueError(f"damage {how!r}: give one of {', '.join(DAMAGES)}")
    copy = folder / "damaged"
    shutil.copytree(good, copy)
    if how == "list":
        (copy / "manifest.json").write_text("[]")
    else:
        data = (copy / "model.onnx").read_bytes()
        (copy / "model.onnx").write_bytes(data[: len(data) // 2])
        write_manifest(copy, json.loads((copy / "manifest.json").read_text()))
    return copy
