"""`edgeship-runtime check` on bad input: a bad flag or path (family `runtime check`), and a crafted
or damaged artifact (family `crafted artifact`): each ends in one clean line, a non-zero exit, no
traceback, no hang. A crafted artifact never passes a check, and what lies outside it (a canary
file that its links and paths point at) is neither read into the output nor changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.artifacts import sha256, tiny_artifact, write_manifest
from tests.support.badinput import assert_one_clean_line, onnx_with_external_data, runtime_cli

PREFIX = "edgeship-runtime: error: "
CANARY = "CANARY-7f3a9c-outside-the-artifact"


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder: Path, change, relist: bool = False) -> None:
    manifest = _manifest(folder)
    change(manifest)
    write_manifest(folder, manifest, relist=relist)


def _set(path: str, value):
    """A manifest edit: the dotted key `path` set to value (deleted when value is DELETE)."""
    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return change


DELETE = object()


def _link(folder: Path, relative: str, target: Path) -> None:
    (folder / relative).unlink()
    (folder / relative).symlink_to(target)


def _list(folder: Path, relative: str, digest: str) -> None:
    _edit(folder, lambda m: m["files"].__setitem__(relative, digest))


def _external(folder: Path, location: str) -> None:
    """model.onnx rewritten to keep its weights in `location` (written beside it as ext.weights)."""
    import onnx

    model = onnx.load(str(folder / "model.onnx"))
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, location="ext.weights", size_threshold=0)
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(folder / "model.onnx"))


def _relist_all(folder: Path) -> None:
    write_manifest(folder, _manifest(folder), relist=True)


def _truncate(folder: Path, relative: str, keep: float = 0.5) -> None:
    data = (folder / relative).read_bytes()
    (folder / relative).write_bytes(data[: int(len(data) * keep)])
    _relist_all(folder)


# kind -> how a copy of the good artifact is crafted: f(folder, outside), `outside` a folder beside it holding the canary
def _traversal(folder, outside):
    other = outside / "model.onnx"
    shutil.copy(folder / "model.onnx", other)
    _edit(folder, lambda m: (m["artifact"].__setitem__("file", "../outside/model.onnx"),
                             m["files"].__setitem__("../outside/model.onnx", sha256(other))))


def _absolute(folder, outside):
    canary = outside / "canary.txt"
    _edit(folder, lambda m: (m["artifact"].__setitem__("file", str(canary)), m["files"].__setitem__(str(canary), sha256(canary))))


def _symlinked_model(folder, outside):
    _link(folder, "model.onnx", outside / "canary.txt")
    _list(folder, "model.onnx", sha256(outside / "canary.txt"))


def _symlinked_reference(folder, outside):
    shutil.copy(folder / "reference" / "outputs.npz", outside / "outputs.npz")
    _link(folder, "reference/outputs.npz", outside / "outputs.npz")


def _symlinked_folder(folder, outside):
    shutil.copytree(folder / "reference", outside / "reference")
    shutil.rmtree(folder / "reference")
    (folder / "reference").symlink_to(outside / "reference")


def _fifo(relative):
    def craft(folder, outside):
        (folder / relative).unlink()
        os.mkfifo(folder / relative)
    return craft


def _hard_to_parse(data: bytes):
    def craft(folder, outside):
        (folder / "manifest.json").write_bytes(data)
    return craft


def _flip(relative):
    def craft(folder, outside):
        data = bytearray((folder / relative).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / relative).write_bytes(bytes(data))
    return craft


def _npz(relative, **arrays):
    def craft(folder, outside):
        np.savez(folder / relative, **arrays)
        _relist_all(folder)
    return craft


def _bytes(relative, data: bytes):
    def craft(folder, outside):
        (folder / relative).write_bytes(data)
        _relist_all(folder)
    return craft


def _manifest_edit(path, value, relist=False):
    return lambda folder, outside: _edit(folder, _set(path, value), relist=relist)


def _external_outside(folder, outside):
    shutil.copy(outside / "canary.txt", outside / "ext.weights")
    _external(folder, "../outside/ext.weights")
    (folder / "ext.weights").unlink()
    _relist_all(folder)


def _external_absolute(folder, outside):
    _external(folder, str(outside / "canary.txt"))
    (folder / "ext.weights").unlink()
    _relist_all(folder)


def _external_unlisted(folder, outside):
    _external(folder, "ext.weights")
    _relist_all(folder)
    _edit(folder, lambda m: m["files"].pop("ext.weights"))


def _external_symlink(folder, outside):
    _external(folder, "ext.weights")
    shutil.move(folder / "ext.weights", outside / "ext.weights")
    (folder / "ext.weights").symlink_to(outside / "ext.weights")
    _relist_all(folder)
    _list(folder, "ext.weights", sha256(outside / "ext.weights"))


def _pickled(folder, outside):
    np.savez(folder / "reference" / "inputs.npz", input=np.array([{"a": 1}], dtype=object))
    _relist_all(folder)


def _listed_folder(folder, outside):
    (folder / "extra").mkdir()
    _list(folder, "extra", "0" * 64)


def _unsafe_anchor(folder, outside):
    np.save(outside / "anchors.npy", np.zeros((4, 4)))
    _edit(folder, _set("task", {"name": "detect", "decoder": "ssd", "anchors": "../outside/anchors.npy"}))


def _unlisted_reference(folder, outside):
    shutil.copy(folder / "reference" / "inputs.npz", folder / "reference" / "other.npz")
    _edit(folder, _set("reference.inputs", "reference/other.npz"))


def _renamed_model(location: str, make_data):
    """The reviewer's craft (review 1.1): the model, listed with its sha256, renamed model.dat (ONNX
    Runtime loads it whatever its name), keeping a weight in `location`; make_data(folder, outside)
    puts something there (the model's own suffix is no reason to skip its external data)."""
    def craft(folder, outside):
        (folder / "model.onnx").unlink()
        onnx_with_external_data(folder / "model.dat", location)

        def change(manifest):
            del manifest["files"]["model.onnx"]
            manifest["files"]["model.dat"] = manifest["artifact"]["sha256"] = sha256(folder / "model.dat")
            manifest["artifact"]["file"] = "model.dat"
        _edit(folder, change)
        make_data(folder, outside)
    return craft


def _matching_unlisted_weight(folder, outside):
    """An unlisted weight of 1.0, and references that the model reading it reproduces: without the
    external-data check, this check would pass."""
    (folder / "weights.bin").write_bytes(np.float32(1.0).tobytes())
    inputs = np.load(folder / "reference" / "inputs.npz")["input"]
    for which in ("outputs", "expected"):
        np.savez(folder / "reference" / f"{which}.npz", logits=inputs)
    _edit(folder, lambda m: (m["outputs"][0].__setitem__("shape", [1, 1, 8, 8]), m.__setitem__("task", {"name": "generic"}),
                             m["accuracy"].__setitem__("tolerances", {"min_cosine": 0.99, "min_snr_db": 20.0})), relist=True)
    _edit(folder, lambda m: m["files"].pop("weights.bin"))


def _unlisted(make):
    """Something nobody listed, beside the artifact's own files: make(path, outside)."""
    def craft(folder, outside):
        make(folder / "reference" / "notes.bin", outside)
    return craft


def _npy_claiming(shape, dtype="<f4"):
    """An .npz whose input.npy header claims `shape` while holding 64 bytes: np.load would make the whole array first."""
    def craft(folder, outside):
        import zipfile

        header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float32))
        header.update(shape=shape, descr=dtype)
        with zipfile.ZipFile(folder / "reference" / "inputs.npz", "w") as archive, archive.open("input.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(bytes(64))
        _relist_all(folder)
    return craft


CRAFTED = {
    "path traversal (artifact.file ../)": _traversal,
    "absolute path (artifact.file)": _absolute,
    "symlinked model": _symlinked_model,
    "symlinked reference": _symlinked_reference,
    "symlinked folder": _symlinked_folder,
    "unlisted model": _manifest_edit("files", {"reference/inputs.npz": "0" * 64}),
    "unlisted reference": _unlisted_reference,
    "unsafe ssd anchors": _unsafe_anchor,
    "sha mismatch (model)": _flip("model.onnx"),
    "sha mismatch (reference)": _flip("reference/outputs.npz"),
    "artifact.sha256 differs from files": _manifest_edit("artifact.sha256", "0" * 64),
    "external data outside": _external_outside,
    "external data absolute": _external_absolute,
    "external data unlisted": _external_unlisted,
    "external data symlinked": _external_symlink,
    "FIFO as model": _fifo("model.onnx"),
    "FIFO as reference": _fifo("reference/inputs.npz"),
    "FIFO as manifest": _fifo("manifest.json"),
    "listed file is a folder": _listed_folder,
    "listed file missing": lambda folder, outside: (folder / "model.onnx").unlink(),
    "manifest list": _hard_to_parse(b"[1, 2, 3]"),
    "manifest not UTF-8": _hard_to_parse(b'{"model": "\xff\xfe"}'),
    "manifest deeply nested": _hard_to_parse(b"[" * 100_000 + b"]" * 100_000),
    "manifest nested past the bound": _hard_to_parse(json.dumps({"x": json.loads("[" * 80 + "]" * 80)}).encode()),
    "manifest huge": _hard_to_parse(b'{"pad": "' + b"x" * (17 << 20) + b'"}'),
    "manifest NaN": _manifest_edit("accuracy.tolerances.min_cosine", float("nan")),
    "manifest truncated JSON": _hard_to_parse(b'{"artifact": {"file": '),
    "manifest symlinked": lambda folder, outside: _link(folder, "manifest.json", outside / "canary.txt"),
    "manifest missing": lambda folder, outside: (folder / "manifest.json").unlink(),
    "missing key artifact": _manifest_edit("artifact", DELETE),
    "missing key inputs": _manifest_edit("inputs", DELETE),
    "missing key files": _manifest_edit("files", DELETE),
    "missing key tolerances": _manifest_edit("accuracy.tolerances", DELETE),
    "missing key reference.inputs": _manifest_edit("reference.inputs", DELETE),
    "wrong type inputs": _manifest_edit("inputs", "input"),
    "wrong type shape": _manifest_edit("inputs", [{"name": "input", "shape": "1x1x8x8"}]),
    "wrong type files digest": _manifest_edit("files", {"model.onnx": 12}),
    "wrong type labels": _manifest_edit("labels", 4),
    "wrong type runtime_backend": _manifest_edit("runtime_backend", ["onnxruntime"]),
    "wrong type tolerance": _manifest_edit("accuracy.tolerances.min_cosine", "high"),
    "wrong perm in mapping": _manifest_edit("artifact_io.mapping.inputs.input.perm", [0, 0, 1, 2]),
    "unknown backend": _manifest_edit("runtime_backend", "quantum"),
    "no backend (an mcu artifact)": _manifest_edit("runtime_backend", ""),
    "unknown task": _manifest_edit("task", {"name": "telepathy"}),
    "unsafe model name": _manifest_edit("model", "../../x"),
    "truncated model": lambda folder, outside: _truncate(folder, "model.onnx"),
    "random bytes as model": _bytes("model.onnx", np.random.default_rng(3).bytes(2048)),
    "empty model": _bytes("model.onnx", b""),
    "truncated npz": lambda folder, outside: _truncate(folder, "reference/inputs.npz", 0.6),
    "text as npz": _bytes("reference/outputs.npz", b"not a zip file"),
    "npz without the input": _npz("reference/inputs.npz", other=np.zeros((4, 1, 8, 8), np.float32)),
    "npz of a scalar": _npz("reference/inputs.npz", input=np.float32(1.0)),
    "pickled npz": _pickled,
    "renamed model, external data an unlisted link outside": _renamed_model(
        "link.bin", lambda folder, outside: (folder / "link.bin").symlink_to(outside / "canary.txt")),
    "renamed model, external data unlisted, references to match": _renamed_model("weights.bin", _matching_unlisted_weight),
    "renamed model, external data outside": _renamed_model(
        "../outside/weights.bin", lambda folder, outside: (outside / "weights.bin").write_bytes(bytes(4))),
    "renamed model, external data absolute": _renamed_model("/etc/hostname", lambda folder, outside: None),
    "unlisted link in the folder": _unlisted(lambda path, outside: path.symlink_to(outside / "canary.txt")),
    "unlisted FIFO in the folder": _unlisted(lambda path, outside: os.mkfifo(path)),
    "npz array of another shape": _npz("reference/inputs.npz", input=np.zeros((4, 3, 9, 9), np.float32)),
    "npz array of text": _npz("reference/inputs.npz", input=np.array([["a"] * 8] * 8)),
    "npz header claiming 4 TiB": _npy_claiming((1 << 34, 1, 8, 8)),
    "npz header claiming another rank": _npy_claiming((4, 64)),
}

FLAGS = {  # kind -> the arguments after `check`; {a} is the good artifact, {d} the test's folder
    "no artifact": [],
    "artifact missing": ["{d}/absent"],
    "artifact is a file": ["{a}/model.onnx"],
    "unknown flag": ["{a}", "--fast"],
    "--max-samples 0": ["{a}", "--max-samples", "0"],
    "--max-samples negative": ["{a}", "--max-samples", "-3"],
    "--max-samples not a number": ["{a}", "--max-samples", "many"],
    "--max-samples a float": ["{a}", "--max-samples", "2.5"],
    "--threads 0": ["{a}", "--threads", "0"],
    "--threads negative": ["{a}", "--threads", "-2"],
    "--threads huge": ["{a}", "--threads", "100000"],
    "--output in a missing folder": ["{a}", "--output", "{d}/missing/check.json"],
    "--output is a folder": ["{a}", "--output", "{d}"],
    "--output is a symlink": ["{a}", "--output", "{d}/link.json"],
    "--output is a FIFO": ["{a}", "--output", "{d}/fifo"],
    "--record two folders deep": ["{a}", "--record", "{d}/no/such/record.json"],
    "--record is a symlink": ["{a}", "--record", "{d}/link.json"],
    "--record is a FIFO": ["{a}", "--record", "{d}/fifo"],
    "--backend-option without =": ["{a}", "--backend-option", "core"],
    "--backend-option threads=": ["{a}", "--backend-option", "threads=4"],
}

KINDS = [("crafted artifact", kind) for kind in CRAFTED] + [("runtime check", kind) for kind in FLAGS]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return tiny_artifact(tmp_path_factory.mktemp("good") / "artifact")


@pytest.fixture
def crafted_root(tmp_path, good):
    """A copy of the good artifact beside `outside/`, which holds the canary its links point at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_text(CANARY + "\n")
    folder = tmp_path / "artifact"
    shutil.copytree(good, folder)
    return folder, outside


def test_the_good_artifact_passes_its_check(good):
    result = runtime_cli("check", str(good))
    assert result.returncode == 0 and json.loads(result.stdout)["passed"], result.stderr[-2000:]


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_a_crafted_artifact_is_one_line_and_never_passes(crafted_root, kind):
    folder, outside = crafted_root
    CRAFTED[kind](folder, outside)
    before = hashlib.sha256((outside / "canary.txt").read_bytes()).hexdigest()
    result = runtime_cli("check", str(folder))
    assert_one_clean_line(result, PREFIX)
    assert result.returncode in (1, 2)  # 1: a report that fails
    if result.stdout.strip():  # a report (files that differ from the manifest): it fails
        assert json.loads(result.stdout)["passed"] is False
    assert CANARY not in result.stdout + result.stderr
    assert hashlib.sha256((outside / "canary.txt").read_bytes()).hexdigest() == before


@pytest.mark.parametrize("kind", list(FLAGS))
def test_a_bad_check_flag_is_one_line(tmp_path, good, kind):
    (tmp_path / "link.json").symlink_to(tmp_path / "canary.txt")
    (tmp_path / "canary.txt").write_text(CANARY)
    os.mkfifo(tmp_path / "fifo")
    args = [arg.format(a=good, d=tmp_path) for arg in FLAGS[kind]]
    result = runtime_cli("check", *args)
    assert_one_clean_line(result, PREFIX)
    assert result.returncode == 2 and not result.stdout.strip()
    assert (tmp_path / "canary.txt").read_text() == CANARY and (tmp_path / "link.json").is_symlink()


def _completed(returncode: int, stderr: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["edgeship-runtime"], returncode, "", stderr)


def test_the_last_resort_line_fails_the_rule_unless_a_test_expects_it():
    """Exit 3 and "(a bug" mean no check caught the input, however clean the line."""
    bug = _completed(3, PREFIX + "KeyError: 'x' (a bug: please report it with the command)\n")
    with pytest.raises(AssertionError, match=r"the last resort answered \(exit 3\)"):
        assert_one_clean_line(bug, PREFIX)
    assert assert_one_clean_line(bug, PREFIX, allow_bug=True).endswith("(a bug: please report it with the command)")
    with pytest.raises(AssertionError, match="the last resort answered"):
        assert_one_clean_line(_completed(3, "edgeship: error: unexpected OSError: x (a bug in edgeship; run again with ...)\n"), "edgeship: error: ")
    assert assert_one_clean_line(_completed(2, PREFIX + "artifact x is missing\n"), PREFIX)
