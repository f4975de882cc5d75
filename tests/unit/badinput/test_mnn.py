"""Bad input for the mnn target and backend: its int8 options on the host (family `convert`: a
feature method MNN does not have, keep_float names with spaces or an empty name, keep_float on
fp16), refused before any container; and the MNN backend's precision on a board (family
`runtime check`), refused before MNN is imported. Each is one clean line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from tests.support import tiny_cnn
from tests.support.artifacts import tiny_artifact, write_manifest
from tests.support.badinput import assert_one_clean_line, invoke_cli, runtime_cli

CONVERT = {  # kind -> (--quant, --option, the message's pattern)
    "mnn feature method unknown": ("int8", "feature_quantize_method=minmax",
                                   r"option feature_quantize_method='minmax' is not offered by target mnn; choose one of: ema, kl, admm$"),
    "mnn keep_float with a space": ("int8", "keep_float=conv 1",
                                    r"option keep_float='conv 1' for target mnn: not a comma-separated list of MNN op names"),
    "mnn keep_float empty name": ("int8", "keep_float=a,,b", r"option keep_float='a,,b' for target mnn: not a comma-separated list"),
    "mnn keep_float on fp16": ("fp16", "keep_float=conv1", r"option keep_float=conv1 only applies to --quant int8 on target mnn, not fp16"),
}
BACKEND_OPTIONS = {
    "mnn precision unknown": ("precision=fp16", r"mnn: --backend-option precision=fp16 is not one of high, normal, low$"),
    "mnn precision empty": ("precision=", r"mnn: --backend-option precision= is not one of high, normal, low$"),
}
KINDS = [("convert", kind) for kind in CONVERT] + [("runtime check", kind) for kind in BACKEND_OPTIONS]


@pytest.mark.parametrize("kind", list(CONVERT))
def test_a_bad_mnn_option_is_refused_on_the_host_in_one_line(tmp_path, kind):
    quant, option, pattern = CONVERT[kind]
    tiny_cnn(tmp_path / "tiny.onnx")
    calibration = tmp_path / "calib"
    calibration.mkdir()
    result = invoke_cli("convert", "--target", "mnn", "--model", str(tmp_path / "tiny.onnx"), "--quant", quant, "--option", option,
                        *(["--calib", str(calibration)] if quant == "int8" else []), "--out", str(tmp_path / "out"))
    assert_one_clean_line(result, "edgeship: error: ", pattern)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def mnn_artifact(tmp_path_factory):
    folder = tiny_artifact(tmp_path_factory.mktemp("mnn") / "a")
    (folder / "model.onnx").rename(folder / "model.mnn")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(target="mnn", runtime_backend="mnn")
    manifest["artifact"]["file"] = "model.mnn"
    write_manifest(folder, manifest)
    return folder


@pytest.mark.parametrize("kind", list(BACKEND_OPTIONS))
def test_a_bad_mnn_backend_option_is_one_line(mnn_artifact, tmp_path, kind):
    option, pattern = BACKEND_OPTIONS[kind]
    result = runtime_cli("check", str(mnn_artifact), "--backend-option", option, "--output", str(tmp_path / "report.json"))
    assert_one_clean_line(result, "edgeship-runtime: error: ", pattern)
    assert not (tmp_path / "report.json").exists()
