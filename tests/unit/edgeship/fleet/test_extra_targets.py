"""A board's edgeship_extra_targets: more runtimes of the same models, each its own bench entry."""

from __future__ import annotations

import json

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet.plan import board_selection, extras_for, find_artifacts
from tests.unit.edgeship.fleet.test_plan import make_artifact

PI = {"host": "pi", "arch": "aarch64", "python": "3.11", "target": "tflite", "quant": "fp16", "cpu_target": "tflite", "cpu_quant": "fp16",
      "extra_targets": [["ncnn", "fp16"], ["mnn", "fp16"]]}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "artifacts"
    make_artifact(root, "digits", "tflite", "fp16", "litert", 1000)
    make_artifact(root, "digits", "ncnn", "fp16", "ncnn", 1000)
    make_artifact(root, "digits", "mnn", "fp16", "mnn", 1000)
    make_artifact(root, "ppocr-rec", "tflite", "fp16", "litert", 1000)
    make_artifact(root, "ppocr-rec", "ncnn", "fp16", "ncnn", 1000)
    return root


def test_each_extra_target_is_an_entry_of_its_own_after_the_boards_own(root, capsys):
    selection = board_selection(PI, find_artifacts(root), None)
    shown = [(entry["model"], entry["primary"]["target"], entry["cpu"]) for entry in selection]
    # the board's own target first (the demo takes a model's first entry); no CPU fallback for an extra: it is the runtime itself
    assert shown == [("digits", "tflite", None), ("digits", "ncnn", None), ("digits", "mnn", None),
                     ("ppocr-rec", "tflite", None), ("ppocr-rec", "ncnn", None)]
    assert extras_for(selection, None) == ("litert", "mnn", "ncnn")  # the wheelhouse gets each runtime's wheel
    assert capsys.readouterr().err == "edgeship: note: board pi: mnn fp16 ppocr-rec left out of its extra targets: there is no such artifact\n"


def test_an_extra_that_failed_at_conversion_is_left_out_with_a_note(root, capsys):
    folder = next(f for f in root.iterdir() if f.name.startswith("digits-mnn"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "accuracy": {"passed": False, "failed": ["logits: cosine 0.9 < 0.99"]}}))
    selection = board_selection({**PI, "extra_targets": [["mnn", "fp16"]]}, find_artifacts(root), ["digits"])
    assert [entry["primary"]["target"] for entry in selection] == ["tflite"]
    assert "mnn fp16 digits left out of its extra targets: it failed its accuracy check at conversion (logits: cosine 0.9 < 0.99)" in \
        capsys.readouterr().err


@pytest.mark.parametrize(("value", "message"), [
    ("ncnn", r"board pi: edgeship_extra_targets is 'ncnn', not a list of \[target, quant\] pairs; give a list"),
    ([["ncnn"]], r"edgeship_extra_targets is \"\[\['ncnn'\]\]\", not a list of \[target, quant\] pairs"),
    ([["ncnn", "int8"]], r"board pi: edgeship_extra_targets names ncnn 'int8', which no board runs \(ncnn takes fp32, fp16\)"),
    ([["mcu", "int8"]], r"names mcu 'int8', which no board runs \(mcu takes int8 and has no board runtime\)"),
    ([["tensorflow", "fp16"]], r"tensorflow"),
])
def test_a_malformed_extra_targets_is_one_line_naming_the_setting(root, value, message):
    with pytest.raises(EdgeshipError, match=message):
        board_selection({**PI, "extra_targets": value}, find_artifacts(root), None)


def test_the_boards_own_target_named_again_is_not_run_twice(root):
    selection = board_selection({**PI, "extra_targets": [["tflite", "fp16"]]}, find_artifacts(root), ["digits"])
    assert len(selection) == 1
