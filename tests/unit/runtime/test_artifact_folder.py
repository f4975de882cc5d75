"""What an artifact folder may hold and how its files are read (review of issue 25): nothing in it
is a link or a special file, listed or not; the model's external data is checked whenever the
backend's runtime reads ONNX, whatever the model file is called; .npz arrays are checked
against the manifest's shapes and a byte cap before they are unpacked, and hashed as they
stream, not held whole beside the arrays; a bench runner reuses its parent's hashes."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edgeship_runtime import npz
from edgeship_runtime.artifact import Artifact
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.manifest import read_manifest
from tests.support.artifacts import sha256, tiny_artifact, write_manifest
from tests.support.badinput import onnx_with_external_data


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return tiny_artifact(tmp_path_factory.mktemp("good") / "artifact")


@pytest.fixture
def copy(good, tmp_path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "artifact"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit(folder: Path, change) -> None:
    manifest = _manifest(folder)
    change(manifest)
    write_manifest(folder, manifest, relist=False)


def _model_with_external_data(folder: Path, name: str, location: str) -> None:
    """The reviewer's craft: a listed model file `name` (not .onnx) whose one weight lives in `location`."""
    (folder / "model.onnx").unlink()
    onnx_with_external_data(folder / name, location)

    def change(manifest):
        del manifest["files"]["model.onnx"]
        manifest["files"][name] = manifest["artifact"]["sha256"] = sha256(folder / name)
        manifest["artifact"]["file"] = name
    _edit(folder, change)


def test_an_unlisted_link_anywhere_in_the_folder_is_refused_when_it_opens(copy, tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"secret")
    (copy / "reference" / "notes.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ArtifactError, match=r"reference/notes\.bin is a symbolic link; refused .*an artifact holds only its own files"):
        Artifact.open(copy)


def test_an_unlisted_fifo_in_the_folder_is_refused_when_it_opens(copy):
    os.mkfifo(copy / "pipe")
    with pytest.raises(ArtifactError, match=r"pipe is a FIFO; refused"):
        Artifact.open(copy)


def test_unlisted_regular_files_and_hard_links_are_left_alone(copy, tmp_path):
    """A release or a user may keep files beside an artifact's own (an engine cache, notes); a
    second name of a listed file is the same, hashed bytes."""
    (copy / "engines").mkdir()
    (copy / "engines" / "model.engine").write_bytes(b"engine")
    os.link(copy / "model.onnx", tmp_path / "backup.onnx")
    artifact = Artifact.open(copy)
    assert artifact.model_path() == copy / "model.onnx"


def test_a_model_not_named_onnx_has_its_external_data_checked_by_its_backend(copy, tmp_path):
    """ONNX Runtime loads a model whatever its name: model.dat's external data, a regular file nobody
    listed, was read (the reviewer's repro, without the link the folder scan now refuses)."""
    (copy / "weights.bin").write_bytes(np.float32(3.0).tobytes())
    _model_with_external_data(copy, "model.dat", "weights.bin")
    artifact = Artifact.open(copy)
    with pytest.raises(ArtifactError, match=r"external data of model\.dat 'weights\.bin' is not listed in manifest\.json's files"):
        artifact.model_path()


@pytest.mark.parametrize("backend", ["tensorrt", "openvino"])
def test_every_backend_that_reads_onnx_checks_it(copy, backend):
    (copy / "weights.bin").write_bytes(np.float32(3.0).tobytes())
    _model_with_external_data(copy, "model.plan", "weights.bin")
    _edit(copy, lambda manifest: manifest.__setitem__("runtime_backend", backend))
    with pytest.raises(ArtifactError, match=r"external data of model\.plan 'weights\.bin' is not listed"):
        Artifact.open(copy).model_path()


def test_an_openvino_ir_is_not_read_as_onnx(copy):
    (copy / "model.onnx").unlink()
    (copy / "model.xml").write_text('<?xml version="1.0"?>\n<net name="x" version="11"></net>\n')

    def change(manifest):
        del manifest["files"]["model.onnx"]
        manifest["files"]["model.xml"] = manifest["artifact"]["sha256"] = sha256(copy / "model.xml")
        manifest["artifact"]["file"] = "model.xml"
        manifest["runtime_backend"] = "openvino"
    _edit(copy, change)
    assert Artifact.open(copy).model_path() == copy / "model.xml"


def test_a_file_that_is_not_onnx_is_refused_for_a_backend_that_reads_onnx(copy):
    (copy / "model.onnx").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    write_manifest(copy, _manifest(copy), relist=True)
    with pytest.raises(ArtifactError, match=r"model\.onnx is not a readable ONNX model .*which onnxruntime reads it as"):
        Artifact.open(copy).model_path()


def _reference_inputs(folder: Path, array: np.ndarray, compressed: bool = False) -> None:
    (np.savez_compressed if compressed else np.savez)(folder / "reference" / "inputs.npz", input=array)
    write_manifest(folder, _manifest(folder), relist=True)


def test_an_array_of_another_shape_than_the_manifest_is_refused_before_it_is_unpacked(copy):
    _reference_inputs(copy, np.zeros((4, 3, 8, 8), np.float32))
    with pytest.raises(ArtifactError, match=r"inputs\.npz \(reference inputs\) array 'input' has the shape \[4, 3, 8, 8\]; "
                                            r"the manifest's tensor is \[1, 1, 8, 8\]"):
        Artifact.open(copy).reference("inputs", ["input"])


def test_a_small_compressed_file_that_unpacks_past_the_cap_is_refused_before_it_is_unpacked(copy, monkeypatch):
    samples = (64 << 20) // (8 * 8 * 4)  # 64 MiB of zeros, a few hundred kB compressed
    _reference_inputs(copy, np.zeros((samples, 1, 8, 8), np.float32), compressed=True)
    assert (copy / "reference" / "inputs.npz").stat().st_size < 1 << 20
    monkeypatch.setattr(npz, "MAX_ARRAY_BYTES", 16 << 20)
    artifact = Artifact.open(copy)
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match=r"its arrays would take over 16 MiB unpacked \(array 'input' is \[262144, 1, 8, 8\] of float32\)"):
            artifact.reference("inputs", ["input"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes were allocated before the refusal"


def test_an_npz_is_hashed_as_it_streams_not_held_whole_beside_its_arrays(copy):
    samples = (32 << 20) // (8 * 8 * 4)
    _reference_inputs(copy, np.ones((samples, 1, 8, 8), np.float32))
    artifact = Artifact.open(copy)
    tracemalloc.start()
    try:
        arrays = artifact.reference("inputs", ["input"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arrays["input"].nbytes == 32 << 20
    assert peak < (32 << 20) * 1.25, f"peak {peak >> 20} MiB for a 32 MiB array: the file was held whole too"


def test_a_changed_npz_is_still_refused(copy):
    artifact = Artifact.open(copy)
    artifact.reference("inputs", ["input"])
    np.savez(copy / "reference" / "inputs.npz", input=np.ones((4, 1, 8, 8), np.float32))
    with pytest.raises(ArtifactError, match=r"inputs\.npz: its sha256 differs from manifest\.json's"):
        artifact.reference("inputs", ["input"])


def test_a_bench_runner_reuses_its_parents_hashes_and_still_sees_a_change(copy):
    parent = Artifact.open(copy)
    parent.model_path()
    runner = Artifact.open(copy, parent.verified)
    assert runner.verified == parent.verified and "model.onnx" in runner.verified
    assert runner.model_path() == copy / "model.onnx"
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.onnx: its sha256 differs"):
        Artifact.open(copy, parent.verified).model_path()


@pytest.mark.parametrize("shape", [[1, 1 << 21], [1, (1 << 31) - 1], [1] * 12])
def test_large_flattened_outputs_and_many_axes_are_manifest_shapes(copy, shape):
    _edit(copy, lambda manifest: manifest["outputs"][0].__setitem__("shape", shape))
    assert read_manifest(copy)["outputs"][0]["shape"] == shape


@pytest.mark.parametrize("shape", [[1, 1 << 31], [1] * 33, [1, -2]])
def test_a_shape_past_the_bounds_is_refused(copy, shape):
    _edit(copy, lambda manifest: manifest["outputs"][0].__setitem__("shape", shape))
    with pytest.raises(ArtifactError, match=r"outputs\[0\]\.shape .* is not a list of at most 32 dimensions"):
        read_manifest(copy)
