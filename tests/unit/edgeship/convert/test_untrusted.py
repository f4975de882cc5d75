"""The controller's checks of a folder a container filled, on folders planted here on the host
(the same checks against a real container's plants: tests/container/convert/test_untrusted_output.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from edgeship.convert.cache import cached
from edgeship.convert.container import bind_made, limits
from edgeship.convert.untrusted import artifact_file, read_json, take_output
from edgeship.errors import EdgeshipError
from edgeship_runtime.files import TreeLimits


@pytest.fixture
def canary(tmp_path) -> Path:
    """A host file outside the output folder that a planted link points at."""
    path = tmp_path / "canary" / "authorized_keys"
    path.parent.mkdir()
    path.write_text("ssh-ed25519 AAAA the owner's key\n")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def output(tmp_path) -> Path:
    folder = tmp_path / "staging"
    (folder / "reference").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"model")
    (folder / "reference" / "inputs.npz").write_bytes(b"npz")
    return folder


PLANTS = {
    "symlink": (lambda folder, canary: os.symlink(canary, folder / "convert.log"), r"convert\.log is a symbolic link; refused"),
    "symlinked folder": (lambda folder, canary: os.symlink(canary.parent, folder / "reference" / "more"), r"more is a symbolic link"),
    "hard link": (lambda folder, canary: os.link(folder / "model.onnx", folder / "copy.onnx"), r"copy\.onnx is a hard link"),
    "fifo": (lambda folder, canary: os.mkfifo(folder / "reference" / "outputs.npz"), r"outputs\.npz is a FIFO; refused"),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_entry_is_refused_in_one_line_and_nothing_outside_changes(output, canary, plant):
    make, message = PLANTS[plant]
    before = digest(canary)
    make(output, canary)
    with pytest.raises(EdgeshipError, match=message) as refused:
        take_output(output, TreeLimits(), "the conversion's output", "onnx")
    assert "\n" not in str(refused.value) and str(output) in str(refused.value)
    assert str(refused.value).endswith("rebuild its image (`invoke images.build --target onnx --rebuild`), and if it happens again, "
                                       "report the model and image")
    assert digest(canary) == before


def test_a_file_over_the_cap_is_refused(output):
    (output / "model.onnx").write_bytes(b"x" * 2000)
    with pytest.raises(EdgeshipError, match=r"model\.onnx is 2000 bytes, over the 1000-byte cap"):
        take_output(output, TreeLimits(file_bytes=1000), "the conversion's output", "onnx")


def test_a_clean_output_is_taken_and_as_root_becomes_roots(output):
    files = take_output(output, TreeLimits(), "the conversion's output", "onnx")
    assert sorted(path.relative_to(output).as_posix() for path in files) == ["model.onnx", "reference/inputs.npz"]
    if os.getuid() == 0:
        assert {os.lstat(path).st_uid for path in [output, output / "reference", *files]} == {0}


def test_a_manifest_is_read_only_as_a_regular_json_object(output, canary):
    canary.write_text(json.dumps({"artifact": {"file": "model.onnx", "sha256": "0" * 64}}))
    os.symlink(canary, output / "manifest.json")
    with pytest.raises(EdgeshipError, match=r"manifest\.json is a symbolic link"):
        read_json(output, "manifest.json", "the conversion's manifest")
    os.unlink(output / "manifest.json")
    for text, message in (("[1, 2]", "is not a JSON object"), ("[" * 100_000, "is not a JSON object"), ("\udcff", "is not a JSON object")):
        (output / "manifest.json").write_bytes(text.encode(errors="surrogateescape"))
        with pytest.raises(EdgeshipError, match=message):
            read_json(output, "manifest.json", "the conversion's manifest")


@pytest.mark.parametrize("name, message", [
    ("../canary/authorized_keys", r"leaves .*staging \(absolute, or with '\.\.'\)"),
    ("/etc/hostname", r"leaves"),
    ("reference", r"is a folder, not a regular file"),
    (7, r"is not a file name"),
])
def test_the_manifests_artifact_name_stays_inside_its_folder(output, canary, name, message):
    with pytest.raises(EdgeshipError, match=message):
        artifact_file(output, {"artifact": {"file": name, "sha256": "0" * 64}})


def test_a_container_made_graph_is_mounted_only_as_a_regular_file(output, canary):
    os.symlink(canary, output / "graph.onnx")
    with pytest.raises(EdgeshipError, match=r"graph\.onnx is a symbolic link.*it is not mounted"):
        bind_made(output / "graph.onnx", "/in/graph/model.onnx", "the cleaned graph")
    mount = bind_made(output / "model.onnx", "/in/graph/model.onnx", "the cleaned graph")
    assert mount["Source"] == str(output.resolve() / "model.onnx") and mount["ReadOnly"]


def test_a_cached_folder_whose_manifest_is_a_link_is_not_a_hit(output, canary):
    canary.write_text(json.dumps({"cache_key": "k", "artifact": {"file": "model.onnx", "sha256": "0" * 64}}))
    os.symlink(canary, output / "manifest.json")
    assert not cached(output, "k")
    os.unlink(output / "manifest.json")
    (output / "manifest.json").write_text(canary.read_text())
    assert cached(output, "k") and not cached(output, "other")


def test_container_limits_come_from_the_settings(monkeypatch):
    monkeypatch.delenv("EDGESHIP_CONTAINER_MEMORY", raising=False)
    monkeypatch.delenv("EDGESHIP_CONTAINER_PIDS", raising=False)
    assert limits() == {"mem_limit": "16g", "pids_limit": 4096}
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "24G")
    monkeypatch.setenv("EDGESHIP_CONTAINER_PIDS", "512")
    assert limits() == {"mem_limit": "24g", "pids_limit": 512}
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "lots")
    with pytest.raises(EdgeshipError, match=r"EDGESHIP_CONTAINER_MEMORY='lots' is not a valid setting; give e\.g\. EDGESHIP_CONTAINER_MEMORY=24g"):
        limits()
