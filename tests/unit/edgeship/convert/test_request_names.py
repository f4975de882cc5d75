"""A conversion's model name follows the one name rule before anything is read or written: --name,
and the default taken from the model file's stem (or its folder for model.onnx)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeship.convert.cache import model_name
from edgeship.convert.request import Request, default_name, plan
from edgeship.errors import EdgeshipError
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
