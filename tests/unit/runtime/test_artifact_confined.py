"""An artifact reads only its own listed files, each verified before it is opened: its manifest is
validated once when it opens (old manifests too), ONNX external data is checked before a session
exists, and a runtime that cannot read a damaged model says so as an ArtifactError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.check import check
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.onnx_external import NotOnnx, external_data_locations
from tests.support.artifacts import tiny_artifact, write_manifest


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return tiny_artifact(tmp_path_factory.mktemp("good") / "artifact")


@pytest.fixture
def copy(good, tmp_path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "artifact"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_manifest_from_before_tasks_and_names_still_opens_and_passes_its_check(copy):
    manifest = _manifest(copy)
    for key in ("task", "model", "artifact_io", "cache_key", "schema", "logs"):
        manifest.pop(key)
    manifest["accuracy"] = {"tolerances": {"min_cosine": 0.98, "min_top1_agreement": 0.9}}  # what targets/base.py recorded then
    write_manifest(copy, manifest, relist=False)
    artifact = Artifact.open(copy)
    report = check(artifact, backend_class(artifact.backend))
    assert report["passed"] and report["task"] == "classify" and report["samples"] == 4


def test_a_file_changed_after_the_artifact_opened_is_refused_before_it_is_loaded(copy):
    artifact = Artifact.open(copy)
    assert artifact.model_path() == copy / "model.onnx"
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.onnx: its sha256 differs from manifest\.json's"):
        artifact.model_path()
    (copy / "convert.log").write_text("a log, not one of the artifact's listed files")
    with pytest.raises(ArtifactError, match="is not listed in manifest.json's files"):
        artifact.member("convert.log")
    assert artifact.verify_files() == ["model.onnx"]


def _externalize(folder: Path, **options) -> None:
    model = onnx.load(str(folder / "model.onnx"))
    onnx.save(model, str(folder / "model.onnx"), save_as_external_data=True, location="weights.bin", size_threshold=0, **options)


def test_listed_external_data_inside_the_folder_runs_and_is_verified_first(copy):
    _externalize(copy)
    write_manifest(copy, _manifest(copy))
    artifact = Artifact.open(copy)
    assert external_data_locations(artifact.model_file) == ["weights.bin"]
    with backend_class("onnxruntime")(artifact) as backend:
        inputs = artifact.reference("inputs", ["input"])
        assert backend.infer({"input": inputs["input"][:1]})["logits"].shape == (1, 4)
    (copy / "weights.bin").write_bytes((copy / "weights.bin").read_bytes()[::-1])
    with pytest.raises(ArtifactError, match=r"weights\.bin: its sha256 differs"):
        backend_class("onnxruntime")(Artifact.open(copy)).load()


def test_the_protobuf_walk_finds_external_data_in_node_attributes_too(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    constant = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones((4, 4), np.float32), "c"))
    graph = helper.make_graph([constant, helper.make_node("MatMul", ["x", "c"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "constant.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True, location="elsewhere.bin", size_threshold=0,
              convert_attribute=True)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.node[0].attribute[0].t.external_data[0].value = "../elsewhere.bin"  # what a crafted model may name
    onnx.save(model, str(path))
    assert external_data_locations(path) == ["../elsewhere.bin"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(NotOnnx, match="truncated"):
        external_data_locations(path)


def test_a_damaged_litert_model_is_an_artifact_error_not_the_interpreters_exception(copy, tmp_path):
    pytest.importorskip("ai_edge_litert")
    (copy / "model.onnx").unlink()
    (copy / "model.tflite").write_bytes(b"TFL3" + bytes(200))
    manifest = _manifest(copy)
    manifest.update(runtime_backend="litert", artifact={"file": "model.tflite", "sha256": ""})
    write_manifest(copy, manifest)
    with pytest.raises(ArtifactError, match=r"litert could not load .*model\.tflite .*copy the artifact again"):
        backend_class("litert")(Artifact.open(copy)).load()
