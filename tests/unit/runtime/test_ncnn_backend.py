"""The ncnn backend's settings, without ncnn: the precision follows the artifact's mode unless
the board asks otherwise, Vulkan is off unless asked, a bad option is one line, and a board
without the wheel is told which extra to install. (ncnn itself runs in the container tier:
tests/container/targets/test_ncnn.py.)"""

from __future__ import annotations

import importlib.util
import json

import pytest

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.backends.ncnn import NcnnBackend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from tests.support.artifacts import tiny_artifact, write_manifest

PARAM = """7767517
3 3
Input                    in0                      0 1 in0
Flatten                  flatten_0                1 1 in0 1
InnerProduct             linear_0                 1 1 1 out0 0=4 1=1 2=256
"""


@pytest.fixture(params=["fp32", "fp16"])
def ncnn_artifact(request, tmp_path):
    folder = tiny_artifact(tmp_path / "a")
    (folder / "model.onnx").unlink()
    (folder / "model.param").write_text(PARAM)
    (folder / "model.bin").write_bytes(bytes(4 * 260))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(target="ncnn", runtime_backend="ncnn")
    manifest["options"]["quant"] = request.param
    manifest["artifact"]["file"] = "model.param"
    manifest["artifact_io"]["mapping"] = {"inputs": {"input": {"name": "in0", "shape": [1, 1, 8, 8], "perm": None}},
                                          "outputs": {"logits": {"name": "out0", "shape": [1, 4], "perm": None}}}
    write_manifest(folder, manifest)
    return Artifact.open(folder)


def test_the_backend_is_found_by_its_manifest_name_and_names_its_extra():
    assert backend_class("ncnn") is NcnnBackend and NcnnBackend.extra == "ncnn" and NcnnBackend.packages == ("ncnn",)


def test_the_precision_follows_the_artifacts_mode_and_vulkan_is_off(ncnn_artifact):
    expected = "fp16-storage" if ncnn_artifact.manifest["options"]["quant"] == "fp16" else "fp32"
    assert NcnnBackend(ncnn_artifact)._settings() == (expected, False)
    assert NcnnBackend(ncnn_artifact, precision="fp16-arithmetic", vulkan="1")._settings() == ("fp16-arithmetic", True)


@pytest.mark.parametrize(("option", "message"), [
    ({"precision": "int8"}, r"^ncnn: --backend-option precision=int8 is not one of fp32, fp16-storage, fp16-arithmetic$"),
    ({"vulkan": "yes"}, r"^ncnn: --backend-option vulkan=yes is not 0 or 1$"),
])
def test_a_wrong_option_is_one_line_before_ncnn_is_imported(ncnn_artifact, option, message):
    with pytest.raises(ArtifactError, match=message):
        NcnnBackend(ncnn_artifact, **option).load()


def test_a_board_without_ncnn_is_told_which_extra_to_install(ncnn_artifact):
    if importlib.util.find_spec("ncnn") is not None:
        pytest.skip("ncnn is installed here: the container tier runs it")
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'edgeship-runtime\[ncnn\]'"):
        NcnnBackend(ncnn_artifact).load()


@pytest.mark.parametrize(("got", "declared", "restored"), [
    ((84, 8400), [1, 84, 8400], (1, 84, 8400)),  # YOLOv8n: every dimension known, reshaped
    ((480, 640), ["n", 1, "h", "w"], (1, 1, 480, 640)),  # PP-OCR det: batch and a channel of 1 dropped by pnnx
    ((40, 6625), ["n", "t", 6625], (1, 40, 6625)),  # PP-OCR rec
])
def test_an_output_gets_the_sources_shape_back(got, declared, restored):
    import numpy as np

    assert NcnnBackend._restore("out0", np.zeros(got, np.float32), declared).shape == restored


def test_an_output_that_does_not_fit_the_manifest_is_one_line():
    import numpy as np

    with pytest.raises(ArtifactError, match=r"^ncnn: output 'out0' has shape \[40, 6624\], which does not fit the manifest's \['n', 't', 6625\]"):
        NcnnBackend._restore("out0", np.zeros((40, 6624), np.float32), ["n", "t", 6625])
