"""Bad input for the ncnn target and backend: `--quant int8` for ncnn (family `convert`: no wheel
ships ncnn2table/ncnn2int8), refused on the host before any container; and the ncnn backend's
options on a board (family `runtime check`): an unknown precision, a Vulkan flag that is not 0
or 1, refused before ncnn is imported. Each is one clean line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from tests.support import tiny_cnn
from tests.support.artifacts import tiny_artifact, write_manifest
from tests.support.badinput import assert_one_clean_line, invoke_cli, runtime_cli

BACKEND_OPTIONS = {  # kind -> (--backend-option, the message's pattern)
    "ncnn precision unknown": ("precision=int8", r"ncnn: --backend-option precision=int8 is not one of fp32, fp16-storage, fp16-arithmetic$"),
    "ncnn precision empty": ("precision=", r"ncnn: --backend-option precision= is not one of"),
    "ncnn vulkan not a flag": ("vulkan=yes", r"ncnn: --backend-option vulkan=yes is not 0 or 1$"),
    "ncnn vulkan a number": ("vulkan=2", r"ncnn: --backend-option vulkan=2 is not 0 or 1$"),
}
KINDS = [("convert", "ncnn --quant int8")] + [("runtime check", kind) for kind in BACKEND_OPTIONS]


def test_ncnn_int8_is_refused_on_the_host_in_one_line(tmp_path):
    tiny_cnn(tmp_path / "tiny.onnx")
    result = invoke_cli("convert", "--target", "ncnn", "--model", str(tmp_path / "tiny.onnx"), "--quant", "int8", "--out", str(tmp_path / "out"))
    assert_one_clean_line(result, "edgeship: error: ", r"target ncnn does not offer --quant int8; choose one of: fp32, fp16")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def ncnn_artifact(tmp_path_factory):
    folder = tiny_artifact(tmp_path_factory.mktemp("ncnn") / "a")
    (folder / "model.onnx").rename(folder / "model.param")
    (folder / "model.bin").write_bytes(b"\0" * 16)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(target="ncnn", runtime_backend="ncnn")
    manifest["artifact"]["file"] = "model.param"
    write_manifest(folder, manifest)
    return folder


@pytest.mark.parametrize("kind", list(BACKEND_OPTIONS))
def test_a_bad_ncnn_backend_option_is_one_line(ncnn_artifact, tmp_path, kind):
    option, pattern = BACKEND_OPTIONS[kind]
    result = runtime_cli("check", str(ncnn_artifact), "--backend-option", option, "--output", str(tmp_path / "report.json"))
    assert_one_clean_line(result, "edgeship-runtime: error: ", pattern)
    assert not (tmp_path / "report.json").exists()
