"""The one name rule and the rules for paths someone else made (edgeship_runtime.names / files)."""

from __future__ import annotations

import os

import pytest

from edgeship_runtime.files import TreeLimits, UnsafePath, confined, scan_tree, write_new
from edgeship_runtime.names import UnsafeName, check, suggest

SAFE = ["digits", "ppocr-det", "yolo11n", "m.v2_int8", "A1", "x" * 64]
UNSAFE = ["", ".", "..", "../x", "a/b", "-rf", ".hidden", "a b", "a\nb", "x" * 65, "{{ lookup('pipe','id') }}", "a;b", "a$b",
          "é", None, 3, ["a"]]


@pytest.mark.parametrize("value", SAFE)
def test_safe_names_pass_unchanged(value):
    assert check(value, "--name") == value


@pytest.mark.parametrize("value", UNSAFE, ids=[repr(v) for v in UNSAFE])
def test_unsafe_names_are_one_line_naming_the_value(value):
    with pytest.raises(UnsafeName, match=r"^--name .* is not a safe name \(1-64 letters") as raised:
        check(value, "--name", "pass --name NAME")
    assert "\n" not in str(raised.value)


def test_suggest_gives_a_safe_name():
    for value in UNSAFE[:14]:
        check(suggest(value), "suggested")


def test_confined_takes_a_regular_file_inside(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "inputs.npz").write_bytes(b"x")
    assert confined(tmp_path, "reference/inputs.npz") == tmp_path / "reference" / "inputs.npz"


@pytest.mark.parametrize("relative,message", [
    ("/etc/hostname", "leaves"), ("../other/model.onnx", "leaves"), ("a/../../x", "leaves"), ("", "not a file name"),
    ("./model.onnx", "leaves"), ("link.onnx", "symbolic link"), ("linkdir/model.onnx", "symbolic link"), ("fifo", "FIFO"),
    ("sub", "folder"), ("absent.onnx", "does not exist"),
])
def test_confined_refuses_what_leaves_or_is_not_a_file(tmp_path, relative, message):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_bytes(b"secret")
    root = tmp_path / "artifact"
    root.mkdir()
    (root / "sub").mkdir()
    os.symlink(outside / "model.onnx", root / "link.onnx")
    os.symlink(outside, root / "linkdir")
    os.mkfifo(root / "fifo")
    with pytest.raises(UnsafePath, match=message):
        confined(root, relative, "manifest file")


def test_confined_refuses_non_strings(tmp_path):
    for value in (None, 3, ["a"], {"a": 1}):
        with pytest.raises(UnsafePath):
            confined(tmp_path, value)


def _tree(tmp_path):
    root = tmp_path / "staging"
    (root / "reference").mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"m" * 10)
    (root / "reference" / "outputs.npz").write_bytes(b"o")
    return root


def test_scan_tree_lists_regular_files(tmp_path):
    root = _tree(tmp_path)
    assert scan_tree(root) == [root / "model.onnx", root / "reference" / "outputs.npz"] or \
        sorted(scan_tree(root)) == sorted([root / "model.onnx", root / "reference" / "outputs.npz"])


@pytest.mark.parametrize("plant,message", [
    (lambda root, canary: os.symlink(canary, root / "convert.log"), "convert.log is a symbolic link"),
    (lambda root, canary: os.symlink(canary.parent, root / "reference" / "dir"), "dir is a symbolic link"),
    (lambda root, canary: os.link(canary, root / "hard"), "hard is a hard link"),
    (lambda root, canary: os.mkfifo(root / "reference" / "pipe"), "pipe is a FIFO"),
])
def test_scan_tree_refuses_links_and_special_files(tmp_path, plant, message):
    root = _tree(tmp_path)
    canary = tmp_path / "canary"
    canary.write_text("host file")
    plant(root, canary)
    with pytest.raises(UnsafePath, match=message):
        scan_tree(root, what="conversion output")
    assert canary.read_text() == "host file"


def test_scan_tree_refuses_oversize(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(UnsafePath, match=r"model.onnx is 10 bytes, over the 5-byte cap"):
        scan_tree(root, TreeLimits(file_bytes=5))
    with pytest.raises(UnsafePath, match="over 10 bytes"):
        scan_tree(root, TreeLimits(total_bytes=10))
    with pytest.raises(UnsafePath, match="more than 2 entries"):
        scan_tree(root, TreeLimits(entries=2))


def test_write_new_never_follows_or_replaces(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("host file")
    os.symlink(canary, tmp_path / "convert.log")
    with pytest.raises(OSError):
        write_new(tmp_path / "convert.log", b"log")
    assert canary.read_text() == "host file"
    write_new(tmp_path / "fresh.log", b"log")
    with pytest.raises(FileExistsError):
        write_new(tmp_path / "fresh.log", b"again")
