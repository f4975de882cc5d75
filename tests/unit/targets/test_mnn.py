"""The mnn target's host side: its table row, the child process that runs MNN's tools (a tool
that dies is a line with its exit status and its last words, a hang is bounded), and the int8
path's refusal of an input name that cannot be the file MNN's quantizer reads. (MNNConvert and
the quantizer themselves run in the container tier: tests/container/targets/test_mnn.py.)"""

from __future__ import annotations

import importlib.util
import subprocess
from types import SimpleNamespace

import pytest

import targets
from targets import mnn
from targets.base import RequestError


def test_the_row_offers_three_modes_calibrates_int8_and_runs_on_the_mnn_backend():
    target = targets.get("mnn")
    assert target.quantizations == ("fp32", "fp16", "int8") and target.default_quant == "fp16" and target.needs_calibration == ("int8",)
    assert target.runtime_backend == "mnn" and target.artifact_suffix == ".mnn" and target.image == "mnn"
    method = target.option("feature_quantize_method")
    assert method.choices == ("ema", "kl", "admm") and method.default == "ema" and "mnn" in target.toolchain_packages


def test_a_tool_that_fails_is_one_error_with_its_exit_status_and_last_lines(tmp_path):
    if importlib.util.find_spec("_tools") is not None:
        pytest.skip("MNN is installed here: the container tier runs its tools")
    log = tmp_path / "mnn-tools.log"
    with pytest.raises(RuntimeError, match=r"^MNN's converter \(MNNConvert\) failed \(exit 1\): .*No module named '_tools'$"):
        mnn.run_tool("mnnconvert", ["-f", "ONNX"], "converter (MNNConvert)", log)
    assert log.read_text().startswith("$ mnnconvert -f ONNX\n")  # what it printed is kept beside the artifact


def test_a_tool_that_hangs_is_stopped_and_named(tmp_path, monkeypatch):
    def too_slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(mnn.subprocess, "run", too_slow)
    with pytest.raises(RuntimeError, match=r"^MNN's offline quantizer did not finish in 1800 s$"):
        mnn.run_tool("mnnquant", [], "offline quantizer", tmp_path / "log")


def test_int8_refuses_an_input_name_that_is_no_file_name_before_writing_samples(tmp_path):
    made = mnn.MNNConverter.__new__(mnn.MNNConverter)
    made.workdir = tmp_path
    made.job = SimpleNamespace(inputs=[{"name": "x", "shape": [1, 3]}], outputs=[{"name": "y", "shape": [1, 3]}],
                               graph_name={"x": "../x"}.get, options={})
    with pytest.raises(RequestError, match=r"^mnn int8: MNN's quantizer reads each input from a file named after it, and '\.\./x' is no "):
        made._quantize(tmp_path / "float.mnn", tmp_path / "model.mnn", [{}])
    assert list(tmp_path.iterdir()) == []
