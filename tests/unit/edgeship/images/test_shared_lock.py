"""An image that shares another's lock (images/mcu on images/tflite) and a narrow `pip check`
exception (images/ncnn: pnnx declares torch, which the image leaves out)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest

from edgeship.errors import EdgeshipError
from edgeship.images import locks
from edgeship.images.build import context_files
from edgeship.images.dockerfile import render
from edgeship.images.locks import added_lock, load_spec, pinned_packages


def test_mcu_installs_tflites_lock_byte_for_byte_and_only_its_own_packages_on_top():
    mcu, tflite = load_spec("mcu"), load_spec("tflite")
    assert mcu.shares_lock == "tflite"
    files = context_files(mcu)
    # the install stage's inputs are tflite's, so Docker reuses tflite's environment layer
    assert files["requirements.lock"] == tflite.lock.read_bytes()
    install_stage = render(mcu).split("\nFROM ${BASE_IMAGE}\n")[0]
    assert install_stage.split("ARG BASE_IMAGE")[1] == render(tflite).split("\nFROM ${BASE_IMAGE}\n")[0].split("ARG BASE_IMAGE")[1]
    added = added_lock(mcu, tflite)
    assert set(pinned_packages(mcu.lock)) - set(pinned_packages(tflite.lock)) == {"tflite-micro", "pyyaml"}
    assert "tflite-micro==" in added and "pyyaml==" in added and "tensorflow==" not in added
    assert added.count("--hash=sha256:") > 2 and files["added.lock"] == added.encode()
    assert "COPY added-wheelhouse/ /tmp/added-wheelhouse/" in render(mcu)
    assert "added" not in render(tflite)


def test_a_lock_that_pins_a_shared_package_differently_is_refused(tmp_path):
    mcu = load_spec("mcu")
    shutil.copytree(mcu.folder, tmp_path / "mcu")
    changed = dataclasses.replace(mcu, folder=tmp_path / "mcu")
    changed.lock.write_text(changed.lock.read_text().replace("numpy==1.26.4 ", "numpy==1.26.3 "))
    with pytest.raises(EdgeshipError, match=r"must pin every package of .*tflite/requirements.lock the same .*numpy==1.26.3 vs numpy==1.26.4"):
        added_lock(changed, load_spec("tflite"))


def test_ncnn_accepts_exactly_pnnxs_torch_line_from_pip_check(tmp_path):
    ncnn = load_spec("ncnn")
    assert ncnn.pip_check_allow == ("pnnx 20261020 requires torch, which is not installed.",)
    assert "torch" not in pinned_packages(ncnn.lock) and "nvidia-cublas-cu12" not in pinned_packages(ncnn.lock)
    text = render(ncnn)
    assert "pip check > /tmp/pip-check.txt" in text
    assert all("pip check > " not in render(load_spec(name)) for name in ("onnx", "tflite", "mcu", "mnn"))
    # the shell the image build runs (sh, as Docker's RUN does), against pip check's outputs and exit codes
    check = "{ " + text.split(" && { ", 1)[1].split("\n\n")[0].replace("\\\n", " ")  # Docker joins continued lines
    fake_pip, out = tmp_path / "pip", tmp_path / "out.txt"
    script = check.replace("/opt/toolchain/bin/pip check", str(fake_pip)).replace("/tmp/pip-check.txt", str(out))
    allowed = "pnnx 20261020 requires torch, which is not installed.\n"
    for output, status, passes in [(allowed, 1, True),
                                   ("No broken requirements found.\n", 0, True),
                                   (allowed + "ncnn 1.0 requires numpy, which is not installed.\n", 1, False),
                                   ("pnnx 20261021 requires torch, which is not installed.\n", 1, False),
                                   ("", 1, False),  # pip crashed (a traceback on stderr, nothing on stdout)
                                   ("", 2, False),  # pip could not run its check at all
                                   (allowed, 2, False),
                                   ("", 127, False)]:  # no pip
        fake_pip.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\nexit {status}\n")
        fake_pip.chmod(0o755)
        for shell in ("sh", "bash"):
            result = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30)
            assert (result.returncode == 0) == passes, (shell, output, status)


def test_a_pip_check_line_the_dockerfile_could_not_quote_is_refused(tmp_path, monkeypatch):
    shutil.copytree(locks.IMAGES_DIR / "ncnn", tmp_path / "ncnn")
    config = tmp_path / "ncnn" / "image.toml"
    config.write_text(config.read_text().replace("which is not installed.", "which is not installed.'; rm -rf /; echo '"))
    monkeypatch.setattr(locks, "IMAGES_DIR", tmp_path)
    with pytest.raises(EdgeshipError, match=r"image.toml: pip_check_allow .* is not a `pip check` line"):
        load_spec("ncnn")
