"""Bad-input corpus, family `crafted artifact`: a manifest whose batch axes, state pairs or reference
sequences (issue 27) do not fit the model: `edgeship-runtime check` ends in one clean line naming the
key and exits non-zero, before anything runs."""

from __future__ import annotations

import json

import pytest

from tests.support.artifacts import tiny_artifact, write_manifest
from tests.support.badinput import assert_one_clean_line, runtime_cli

PREFIX = "edgeship-runtime: error: "


def _state(value):
    return lambda manifest: manifest.__setitem__("state", value)


def _sequences(value):
    return lambda manifest: manifest["reference"].__setitem__("sequences", value)


def _axis(value):
    return lambda manifest: manifest["inputs"][0].__setitem__("batch_axis", value)


PAIR = {"output": "logits", "input": "input"}
# (kind, manifest edit, what the one line must say)
CASES = [
    ("state naming an output the model lacks", _state([{"output": "stateN", "input": "input"}]),
     r"state\[0\]\.output names .stateN., which is not one of the model's outputs"),
    ("state naming an input the model lacks", _state([{"output": "logits", "input": "state"}]),
     r"state\[0\]\.input names .state., which is not one of the model's inputs"),
    ("state that is not a list of pairs", _state({"logits": "input"}), r"manifest\.json.*state is .*not a list"),
    ("a state pair that is not an object", _state(["logits:input"]), r"state\[0\] is .logits:input., not an object with an output and an input"),
    ("reference sequences that are not step counts", _sequences([3, 0]),
     r"reference\.sequences is \[3, 0\], not a list of 1 to 4096 positive step counts"),
    ("reference sequences that do not cover the reference", lambda m: (_state([PAIR])(m), _sequences([1, 1])(m)),
     r"manifest\.json reference\.sequences sums to 2 steps, but the reference inputs hold 4; convert the model again$"),
    ("a batch axis outside the input's shape", _axis(4), r"inputs\[0\]\.batch_axis is 4, outside the shape \[1, 1, 8, 8\]"),
    ("a batch axis that is not a number", _axis("batch"), r"inputs\[0\]\.batch_axis is .batch., not the index of the batch axis, or null"),
]
KINDS = [("crafted artifact", kind) for kind, _, _ in CASES]  # counted by tests/unit/test_bad_input_corpus.py


@pytest.mark.parametrize("kind,change,message", CASES, ids=[case[0] for case in CASES])
def test_a_manifest_whose_axes_or_state_do_not_fit_is_one_line(tmp_path, kind, change, message):
    folder = tiny_artifact(tmp_path / "artifact")
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    write_manifest(folder, manifest)
    result = runtime_cli("check", str(folder))
    assert_one_clean_line(result, PREFIX, message)
