"""The MNN backend's settings, without MNN: high (fp32) precision and MNN's 4 threads unless the
board says otherwise, a bad option is one line before MNN is imported, and a board without the
wheel is told which extra to install. (MNN itself runs in the container tier:
tests/container/targets/test_mnn.py.)"""

from __future__ import annotations

import importlib.util
import json

import pytest

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.backends.mnn import MNNBackend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from tests.support.artifacts import tiny_artifact, write_manifest


@pytest.fixture
def mnn_artifact(tmp_path):
    folder = tiny_artifact(tmp_path / "a")
    (folder / "model.onnx").rename(folder / "model.mnn")  # not read: these tests stop before MNN opens it
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(target="mnn", runtime_backend="mnn")
    manifest["artifact"]["file"] = "model.mnn"
    write_manifest(folder, manifest)
    return Artifact.open(folder)


def test_the_backend_is_found_by_its_manifest_name_and_names_its_extra():
    assert backend_class("mnn") is MNNBackend and MNNBackend.extra == "mnn" and MNNBackend.packages == ("mnn",)


def test_fp32_arithmetic_and_mnns_threads_unless_the_board_says_otherwise(mnn_artifact):
    assert MNNBackend(mnn_artifact).settings() == {"backend": "CPU", "precision": "high", "numThread": 4}
    assert MNNBackend(mnn_artifact, threads=2, precision="low").settings() == {"backend": "CPU", "precision": "low", "numThread": 2}


def test_a_wrong_precision_is_one_line_before_mnn_is_imported(mnn_artifact):
    with pytest.raises(ArtifactError, match=r"^mnn: --backend-option precision=fp16 is not one of high, normal, low$"):
        MNNBackend(mnn_artifact, precision="fp16").load()


def test_a_board_without_mnn_is_told_which_extra_to_install(mnn_artifact):
    if importlib.util.find_spec("MNN") is not None:
        pytest.skip("MNN is installed here: the container tier runs it")
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'edgeship-runtime\[mnn\]'"):
        MNNBackend(mnn_artifact).load()


def test_what_mnn_prints_as_it_loads_goes_to_stderr_not_into_the_clis_json(capfd):
    import os

    from edgeship_runtime.backends.mnn import stdout_to_stderr

    with stdout_to_stderr():
        os.write(1, b"The device supports: i8sdot:0\n")  # as MNN's C++ writes it, below Python's sys.stdout
    print("{}")
    captured = capfd.readouterr()
    assert captured.out == "{}\n" and captured.err == "The device supports: i8sdot:0\n"


def test_what_mnn_prints_through_c_stdio_into_a_pipe_stays_out_of_the_json():
    """MNN prints with the C library's printf: into a pipe (ansible's command module, the health gate's
    subprocess) that is held in libc's buffer and was written at exit, after the JSON, on the real stdout."""
    import os
    import subprocess
    import sys

    code = ("import ctypes, json\nfrom edgeship_runtime.backends.mnn import stdout_to_stderr\n"
            "with stdout_to_stderr():\n    ctypes.CDLL(None).printf(b'MNN use high precision\\n')\n"
            "print(json.dumps({'passed': True}))\n")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}  # -u leaves C stdio unbuffered too
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 0 and json.loads(done.stdout) == {"passed": True}
    assert done.stderr == "MNN use high precision\n"
