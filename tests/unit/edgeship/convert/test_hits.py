"""The quick cache hit (edgeship/convert/hits.py): the very request again answers with the artifact
and its summary; any changed input, option, artifact, code or image is a miss. No Docker: the
records here name no image, or one the engine does not have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from edgeship.convert import Request, hits
from edgeship.paths import REPO_ROOT
from tests.support.badinput import invoke_cli

KEY = "ab" * 32
LINES = ["accuracy within tolerance (quick-hit test)", "task classify: top-1 agreement with fp32 100.00%"]


@pytest.fixture
def converted(tmp_path, monkeypatch):
    """A request and the artifact the full path would have left for it, with its record kept."""
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    inputs = tmp_path / "inputs"
    (inputs / "calib").mkdir(parents=True)
    (inputs / "model.onnx").write_bytes(b"model bytes")
    (inputs / "eval.npz").write_bytes(b"eval bytes")
    for index in range(2):
        (inputs / "calib" / f"{index}.npy").write_bytes(b"sample %d" % index)
    out = tmp_path / "artifacts"
    final = out / f"inputs-tflite-int8-{KEY[:12]}"
    final.mkdir(parents=True)
    (final / "model.tflite").write_bytes(b"converted")
    (final / "manifest.json").write_text(json.dumps({"cache_key": KEY, "artifact": {"file": "model.tflite"}}))
    request = Request(target="tflite", model=inputs / "model.onnx", quant="int8", calib=inputs / "calib", eval=inputs / "eval.npz", out=out)
    files = [request.model, *sorted((inputs / "calib").iterdir()), request.eval]
    hits.remember(asdict(request), hits.code_sha256(), files, request.calib, [], KEY, final, LINES)
    return request, final


def test_the_same_request_is_a_hit_with_its_summary(converted):
    request, final = converted
    assert hits.hit(asdict(request)) == (final, LINES)


@pytest.mark.parametrize("change", ["model", "eval", "calib sample", "calib added", "option", "quant", "out", "env"])
def test_a_changed_input_or_request_is_a_miss(converted, change, monkeypatch):
    request, final = converted
    inputs = request.model.parent
    if change == "model":
        request.model.write_bytes(b"model bytes, retrained")
    elif change == "eval":
        request.eval.write_bytes(b"eval bytes 2")
    elif change == "calib sample":
        (inputs / "calib" / "0.npy").write_bytes(b"sample x")
    elif change == "calib added":
        (inputs / "calib" / "2.npy").write_bytes(b"sample 2")
    elif change == "option":
        request.options = {"io_dtype": "uint8"}
    elif change == "quant":
        request.quant = "fp16"
    elif change == "out":
        request.out = final.parent.parent / "elsewhere"
    else:
        monkeypatch.setenv("BASE_IMAGE", "debian:bookworm")
    assert hits.hit(asdict(request)) is None


@pytest.mark.parametrize("change", ["manifest key", "manifest edited", "artifact gone", "artifact a link", "folder gone"])
def test_a_changed_artifact_is_a_miss(converted, change):
    request, final = converted
    if change == "manifest key":
        (final / "manifest.json").write_text(json.dumps({"cache_key": "cd" * 32, "artifact": {"file": "model.tflite"}}))
    elif change == "manifest edited":  # same key, other content: the summary kept would not be its summary
        (final / "manifest.json").write_text(json.dumps({"cache_key": KEY, "artifact": {"file": "model.tflite"}, "x": 1}))
    elif change == "artifact gone":
        (final / "model.tflite").unlink()
    elif change == "artifact a link":
        (final / "model.tflite").rename(final.parent / "elsewhere.tflite")
        (final / "model.tflite").symlink_to(final.parent / "elsewhere.tflite")
    else:
        (final / "model.tflite").unlink()
        (final / "manifest.json").unlink()
        final.rmdir()
    assert hits.hit(asdict(request)) is None


def test_changed_code_is_a_miss(converted, tmp_path, monkeypatch):
    """The record's code hash is checked again: a copy of the repository's code, one file edited."""
    request, _ = converted
    copy = tmp_path / "repo"
    for folder in hits.CODE:
        (copy / folder).mkdir(parents=True)
        (copy / folder / "module.py").write_text("x = 1\n")
    (copy / "tasks.py").write_text("")
    monkeypatch.setattr(hits, "REPO_ROOT", copy)
    record = hits.record_path(hits.request_digest(asdict(request)))
    data = json.loads(record.read_text())
    data["code"] = hits.code_sha256()
    record.write_text(json.dumps(data))
    assert hits.hit(asdict(request)) is not None
    (copy / "targets" / "module.py").write_text("x = 2\n")
    assert hits.hit(asdict(request)) is None


def test_an_image_the_engine_does_not_hold_under_its_tag_is_a_miss(converted):
    """A rebuilt or removed image (or no engine at all) is a miss: the id behind the tag is asked."""
    request, final = converted
    files = [request.model, *sorted(request.calib.iterdir()), request.eval]
    images = [{"name": "tflite", "tag": "edgeship/no-such-image:000000000000", "id": "sha256:" + "0" * 64,
               "base": "edgeship/base:no-such-base", "base_id": "sha256:" + "1" * 64}]
    hits.remember(asdict(request), hits.code_sha256(), files, request.calib, images, KEY, final, LINES)
    assert hits.hit(asdict(request)) is None


def test_the_engine_is_not_asked_over_tcp(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert hits._engine_image_id("edgeship/tflite:000000000000") is None


def test_a_hit_imports_no_model_checks_engine_sdk_or_targets(converted):
    request, final = converted
    fields = {name: str(value) if isinstance(value, Path) else value for name, value in asdict(request).items()}
    code = ("import json, sys\nfrom pathlib import Path\nfrom edgeship.convert import hits\n"
            f"fields = json.loads({json.dumps(json.dumps(fields))})\n"
            "fields = {k: Path(v) if k in ('model', 'calib', 'eval', 'out') else v for k, v in fields.items()}\n"
            "assert hits.hit(fields) is not None, 'a miss'\n"
            "print(sorted({'numpy', 'onnx', 'docker', 'targets', 'edgeship.convert.request'} & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=os.environ)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_cli_answers_a_hit_with_the_summary_and_the_folder_last(converted):
    """`invoke convert` builds the very fields a Request has (a field tasks.py does not pass would
    make every CLI run a miss, and this test fail)."""
    request, final = converted
    result = invoke_cli("convert", "--target", "tflite", "--model", str(request.model), "--quant", "int8", "--calib", str(request.calib),
                        "--eval", str(request.eval), "--out", str(request.out), env={"EDGESHIP_CACHE": os.environ["EDGESHIP_CACHE"]})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [f"edgeship: {line}" for line in LINES] + [str(final)]


@pytest.mark.parametrize("change", ["eval", "calib sample"])
def test_an_input_changed_while_it_was_converted_leaves_no_record(converted, change):
    """The key was made of the files as the plan read them: a file edited during the conversion would
    pair its new bytes with the artifact of the old ones, so no record is written (the review's case)."""
    request, final = converted
    hits.record_path(hits.request_digest(asdict(request))).unlink()
    before = hits.input_digests(asdict(request))
    assert set(before) == {str(request.model), str(request.eval), *(str(p) for p in request.calib.iterdir())}
    (request.eval if change == "eval" else request.calib / "0.npy").write_bytes(b"edited while converting")
    files = [request.model, *sorted(request.calib.iterdir()), request.eval]
    with pytest.raises(ValueError, match="an input file changed while it was converted"):
        hits.remember(asdict(request), hits.code_sha256(), files, request.calib, [], KEY, final, LINES, before=before)
    assert hits.hit(asdict(request)) is None
