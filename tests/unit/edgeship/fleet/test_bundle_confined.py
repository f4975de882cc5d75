"""The bundle packs only an artifact's own listed files: each a regular file inside its folder,
reached through no link, and the very file its manifest lists (hashed as it is packed); the
planner's names from manifests follow the one name rule. Each refusal is one EdgeshipError line
naming the manifest or the file, and no bundle is left behind."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet.bundle import pack_bundle
from edgeship.fleet.plan import board_selection, find_artifacts
from tests.unit.edgeship.fleet.test_plan import BOARD, make_artifact


@pytest.fixture
def packed(tmp_path):
    """An artifacts root with one CPU artifact of digits, a wheelhouse, and a way to pack it."""
    root = tmp_path / "artifacts"
    folder = make_artifact(root, "digits", "tflite", "fp32", "litert", 1000)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "edgeship_runtime-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    bundles = tmp_path / "bundles"

    def pack():
        return pack_bundle(BOARD, board_selection(BOARD, find_artifacts(root), ["digits"]), wheels, ("litert",), bundles)

    return folder, pack, bundles


def _relist(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_a_clean_artifact_packs_its_listed_files_only(packed):
    folder, pack, _ = packed
    (folder / "stray.txt").write_text("not listed")  # a file the manifest does not list stays home
    with tarfile.open(pack()["bundle"]) as tar:
        packed_names = tar.getnames()
    assert f"artifacts/{folder.name}/model.tflite" in packed_names
    assert not any(name.endswith("stray.txt") for name in packed_names)


@pytest.mark.parametrize("entry,message", [
    ("../secret", r"leaves .* \(absolute, or with '\.\.'\)"),
    ("/etc/hostname", r"leaves .* \(absolute, or with '\.\.'\)"),
    ("missing.bin", "does not exist"),
])
def test_a_listed_name_outside_the_folder_or_missing_is_refused(packed, entry, message):
    folder, pack, bundles = packed
    manifest = json.loads((folder / "manifest.json").read_text())
    _relist(folder, files={**manifest["files"], entry: "0" * 64})
    with pytest.raises(EdgeshipError, match=message):
        pack()
    assert not list(bundles.glob("*.tar")) and not list(bundles.glob(".bundle-*"))


def test_a_symlinked_file_is_never_followed(packed, tmp_path):
    folder, pack, _ = packed
    canary = tmp_path / "canary"
    canary.write_text("host secret")
    (folder / "model.tflite").unlink()
    (folder / "model.tflite").symlink_to(canary)
    with pytest.raises(EdgeshipError, match="model.tflite.* is a symbolic link"):
        pack()


def test_a_file_changed_after_conversion_is_refused_while_packing(packed):
    folder, pack, bundles = packed
    (folder / "reference" / "inputs.npz").write_bytes(b"changed")
    with pytest.raises(EdgeshipError, match=r"inputs\.npz: its sha256 .* is not the .* its manifest lists"):
        pack()
    assert not list(bundles.glob("*.tar")) and not list(bundles.glob(".bundle-*"))


def test_a_fifo_in_place_of_a_listed_file_is_refused_without_waiting(packed):
    folder, pack, _ = packed
    (folder / "reference" / "inputs.npz").unlink()
    os.mkfifo(folder / "reference" / "inputs.npz")
    with pytest.raises(EdgeshipError, match="is a FIFO"):
        pack()


@pytest.mark.parametrize("key,value,message", [
    ("model", "../../x", r"model '\.\./\.\./x' is not a safe name"),
    ("model", "digits\nExecStartPre=+/bin/sh", "is not a safe name"),
    ("target", "tflite/../x", "target 'tflite/../x' is not a safe name"),
    ("options", "fp32", "options must be an object"),
])
def test_names_from_manifests_follow_the_name_rule(packed, key, value, message):
    folder, _, _ = packed
    _relist(folder, **{key: value})
    with pytest.raises(EdgeshipError, match=message) as raised:
        find_artifacts(folder.parent)
    assert str(folder / "manifest.json") in str(raised.value) and "\n" not in str(raised.value).replace("\\n", "")


def test_a_manifest_that_is_a_link_is_refused_and_one_that_is_not_json_skipped(packed, tmp_path):
    folder, _, _ = packed
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text((folder / "manifest.json").read_text())
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").symlink_to(elsewhere)
    with pytest.raises(EdgeshipError, match="manifest.json.* is a symbolic link"):
        find_artifacts(folder.parent)
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").write_bytes(b"[" * 100_000)
    assert find_artifacts(folder.parent) == []
