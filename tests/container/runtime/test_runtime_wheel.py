"""The runtime wheel installs offline into a fresh virtual environment from a wheelhouse,
and its wheel sets resolve for the boards' platforms (x86_64, aarch64; Python 3.10, 3.11)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from edgeship.fleet.wheels import build_runtime_wheel, ensure_runtime_wheelhouse


def test_wheel_is_pure_python_and_imports_nothing_from_the_controller():
    wheel = build_runtime_wheel()
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = [archive.read(name).decode() for name in names if name.endswith(".py")]
    assert all(name.startswith(("edgeship_runtime/", "edgeship_runtime-")) for name in names)
    for source in sources:
        assert "from edgeship." not in source and "import edgeship." not in source and "from targets" not in source


@pytest.mark.parametrize("arch,python,extras", [
    ("x86_64", "3.11", ("litert", "onnxruntime")), ("x86_64", "3.10", ("litert", "onnxruntime")),
    ("aarch64", "3.11", ("litert", "onnxruntime")), ("aarch64", "3.10", ("litert", "onnxruntime")),
    ("aarch64", "3.11", ("rknn",)), ("aarch64", "3.10", ("rknn",)),
])
def test_wheel_sets_resolve_for_board_platforms(arch, python, extras):
    wheelhouse = ensure_runtime_wheelhouse(arch, python, extras)
    wheels = [path.name for path in wheelhouse.glob("*.whl")]
    assert any(name.startswith("edgeship_runtime-") for name in wheels)
    assert any(name.startswith("numpy-") for name in wheels)
    for extra, prefix in (("litert", "ai_edge_litert-"), ("onnxruntime", "onnxruntime-"), ("rknn", "rknn_toolkit_lite2-")):
        if extra in extras:
            tag = f"cp{python.replace('.', '')}"
            assert any(name.startswith(prefix) and (tag in name or "py3" in name) and (arch in name or "any" in name) for name in wheels), wheels


def test_offline_install_into_a_fresh_venv_runs_check(conversions, tmp_path):
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheelhouse = ensure_runtime_wheelhouse("x86_64", python, ("litert", "onnxruntime"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-index", "--find-links", str(wheelhouse), "--quiet",
                              "edgeship-runtime[litert,onnxruntime]"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"})
    assert install.returncode == 0, install.stderr[-2000:]
    for artifact in (conversions("digits", "int8"), conversions("digits", "int8", target="onnx")):
        result = subprocess.run([str(venv / "bin" / "edgeship-runtime"), "check", str(artifact)], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout)["passed"]
