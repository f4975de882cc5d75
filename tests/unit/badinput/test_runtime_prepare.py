"""`edgeship-runtime prepare` on bad input (family `runtime prepare`): artifacts that are missing,
crafted or for an accelerator this machine lacks, and bad output paths: one clean line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.artifacts import tiny_artifact
from tests.support.badinput import assert_one_clean_line, runtime_cli

PREFIX = "edgeship-runtime: error: "


def _manifest(key, value):
    def craft(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest[key] = value
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return craft


def _link_model(folder: Path) -> None:
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to("/etc/hostname")


CRAFT = {  # kind -> how the second artifact given is damaged (None: the arguments alone are bad)
    "no artifact": None,
    "artifact missing": None,
    "artifact is a file": None,
    "--output in a missing folder": None,
    "unknown flag": None,
    "manifest a list": lambda folder: (folder / "manifest.json").write_text("[]"),
    "manifest missing files": _manifest("files", None),
    "symlinked model": _link_model,
    "unknown backend": _manifest("runtime_backend", "quantum"),
    "TensorRT without a GPU": _manifest("runtime_backend", "tensorrt"),
}

KINDS = [("runtime prepare", kind) for kind in CRAFT]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return tiny_artifact(tmp_path_factory.mktemp("good") / "artifact")


@pytest.mark.parametrize("kind", list(CRAFT))
def test_a_bad_prepare_input_is_one_line(tmp_path, good, kind):
    second = tmp_path / "second"
    shutil.copytree(good, second)
    args = {"no artifact": [], "artifact missing": [str(tmp_path / "absent")], "artifact is a file": [str(good / "model.onnx")],
            "--output in a missing folder": [str(good), "--output", str(tmp_path / "no" / "out.json")],
            "unknown flag": [str(good), "--now"]}.get(kind)
    if args is None:
        CRAFT[kind](second)
        args = [str(good), str(second)]  # the good one first: the bad one still stops the command
    result = runtime_cli("prepare", *args)
    assert_one_clean_line(result, PREFIX)
    assert result.returncode == 2 and not result.stdout.strip()  # 3 would be the last resort: a bug
