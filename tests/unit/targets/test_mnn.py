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


def mnn_like(path, uuid_text: str, weights: bytes = b"\x01\x02\x03\x04"):
    """A flatbuffer shaped like an .mnn file's root table: bizCode (field 0), a weights vector
    standing in for the ops, and mnn_uuid (field 11), as MNNConvert writes them."""
    import flatbuffers

    builder = flatbuffers.Builder(256)
    biz, uuid_string = builder.CreateString("edgeship"), builder.CreateString(uuid_text)
    data = builder.CreateByteVector(weights)
    builder.StartObject(mnn.MNN_UUID_FIELD + 1)
    builder.PrependUOffsetTRelativeSlot(0, biz, 0)
    builder.PrependUOffsetTRelativeSlot(3, data, 0)
    builder.PrependUOffsetTRelativeSlot(mnn.MNN_UUID_FIELD, uuid_string, 0)
    builder.Finish(builder.EndObject())
    path.write_bytes(bytes(builder.Output()))
    return path


def test_mnnconverts_random_uuid_becomes_one_made_from_the_files_bytes(tmp_path):
    import uuid

    first = mnn_like(tmp_path / "a.mnn", "f9700aa9-b791-40de-a8b4-4c92f6b1f58e")
    second = mnn_like(tmp_path / "b.mnn", "f314e066-22f3-4489-8f91-2057101e3ff5")
    other = mnn_like(tmp_path / "c.mnn", "f314e066-22f3-4489-8f91-2057101e3ff5", weights=b"\x01\x02\x03\x05")
    size = first.stat().st_size
    for path in (first, second, other):
        mnn.fix_uuid(path)
    assert first.read_bytes() == second.read_bytes() and first.stat().st_size == size
    assert other.read_bytes() != first.read_bytes()  # other weights, another UUID
    found = [part for part in first.read_bytes().split(b"\0") if len(part) == 36]  # the string, between its length and its NUL
    assert len(found) == 1 and uuid.UUID(found[0].decode()).version == 4
    mnn.fix_uuid(first)
    assert first.read_bytes() == second.read_bytes()  # once fixed, fixed


def test_an_mnn_uuid_of_another_length_is_refused_not_cut(tmp_path):
    model = mnn_like(tmp_path / "model.mnn", "not-a-uuid")
    with pytest.raises(RuntimeError, match="10-byte mnn_uuid, not a 36-character UUID"):
        mnn.fix_uuid(model)
