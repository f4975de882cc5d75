"""A conversion's model name follows the one name rule before anything is read or written: --name,
and the default taken from the model file's stem (or its folder for model.onnx); and it is short
enough that its artifact folder, NAME-TARGET-QUANT-KEY, follows the rule too (the planner and the
bundle hold the folder to it, since it names a folder on the boards)."""

from __future__ import annotations

from pathlib import Path

import pytest

import targets
from edgeship.convert.cache import model_name
from edgeship.convert.request import Request, artifact_folder, default_name, longest_name, plan
from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from tests.support import tiny_cnn


@pytest.mark.parametrize(("name", "suggestion"), [
    ("../../x", "x"), ("a/b", "a-b"), ("a\nb", "a-b"), ("-rf", "rf"), ("", "model"), ("x" * 65, "x" * 64),
    ("{{ lookup('pipe', 'id') }}", "lookup-pipe-id"), ("modèle", "mod-le"), (".hidden", "hidden"),
])
def test_an_unsafe_name_is_refused_in_one_line_with_a_safe_suggestion(tmp_path, name, suggestion):
    model = tiny_cnn(tmp_path / "tiny.onnx")
    with pytest.raises(EdgeshipError, match=rf"^--name .* is not a safe name \(1-64 letters, .*\); e\.g\. --name {suggestion}$") as raised:
        plan(Request(target="tflite", model=model, out=tmp_path / "out", name=name))
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_a_model_stem_that_breaks_the_rule_suggests_a_name(tmp_path):
    model = tiny_cnn(tmp_path / "my model (v2).onnx")
    with pytest.raises(EdgeshipError, match=r"the model's name \(taken from .*my model \(v2\)\.onnx\) 'my model \(v2\)' is not a safe name "
                                            r".*; pass --name my-model-v2$"):
        plan(Request(target="tflite", model=model, out=tmp_path / "out"))
    plan(Request(target="tflite", model=model, out=tmp_path / "out", name="my-model-v2"))  # the suggestion is taken


def test_a_model_onnx_is_named_by_its_folder_and_that_name_is_checked(tmp_path):
    (tmp_path / "bad name").mkdir()
    model = tiny_cnn(tmp_path / "bad name" / "model.onnx")
    with pytest.raises(EdgeshipError, match=r"'bad name' is not a safe name .*; pass --name bad-name$"):
        plan(Request(target="tflite", model=model))


@pytest.mark.parametrize("path", ["digits.onnx", "ppocr-det/model.onnx", "mobilenet_v2/saved_model", "yolo.v8/model.tflite"])
def test_the_checked_default_is_the_name_the_cache_gives_the_artifact(tmp_path, path):
    model = tmp_path / path
    model.parent.mkdir(parents=True, exist_ok=True)
    tiny_cnn(model) if model.suffix == ".onnx" else model.write_bytes(b"")

    class Stand:  # cache.model_name reads only p.request
        request = Request(target="tflite", model=model)

    assert default_name(model) == model_name(Stand())  # type: ignore[arg-type]


def test_a_safe_name_passes(tmp_path):
    model = tiny_cnn(tmp_path / "tiny.onnx")
    assert plan(Request(target="tflite", model=model, name="digits-v1.2_b")).request.name == "digits-v1.2_b"
    assert default_name(Path("x/ppocr.det.onnx")) == "ppocr.det"


@pytest.mark.parametrize(("target", "quant"), [(name, quant) for name, row in sorted(targets.TARGETS.items()) for quant in row.quantizations])
def test_the_longest_name_a_target_and_quant_allow_makes_a_folder_of_exactly_the_rule(target, quant):
    longest = longest_name(target, quant)
    key = "f" * 64  # a sha256's hex digits
    assert names.is_safe(artifact_folder("n" * longest, target, quant, key)) and len(artifact_folder("n" * longest, target, quant, key)) == 64
    assert not names.is_safe(artifact_folder("n" * (longest + 1), target, quant, key))


def test_a_name_too_long_for_its_artifact_folder_is_refused_naming_the_longest(tmp_path):
    """A name of 35-64 characters passed the rule alone and converted, then every deploy refused its folder."""
    model = tiny_cnn(tmp_path / "tiny.onnx")
    assert plan(Request(target="tflite", model=model, name="n" * 39)).request.name == "n" * 39
    with pytest.raises(EdgeshipError, match=r"^--name 'n{40}' is 40 characters, over the 39 that target tflite --quant fp32 leaves it: "
                                            r"its artifact folder NAME-tflite-fp32-KEY \(KEY: 12 characters\) names a folder on the boards "
                                            r"and must keep to 64; e\.g\. --name n{39}$"):
        plan(Request(target="tflite", model=model, name="n" * 40))
    with pytest.raises(EdgeshipError, match=r"over the 36 that target tflite --quant dynamic leaves it: .*; e\.g\. --name n{36}$"):
        plan(Request(target="tflite", model=model, quant="dynamic", name="n" * 39))
    assert not (tmp_path / "out").exists()


def test_a_model_stem_too_long_for_its_artifact_folder_suggests_a_shorter_name(tmp_path):
    model = tiny_cnn(tmp_path / ("long-model-name_" * 4 + ".onnx"))
    with pytest.raises(EdgeshipError, match=r"^the model's name \(taken from .*\) 'long-model-name_.*' is 64 characters, over the 39 .*"
                                            r"; pass --name long-model-name_long-model-name_long-mo$"):
        plan(Request(target="tflite", model=model))
