"""`invoke build` and `invoke verify` end to end on the digits matrix (every target, every mode):
the lock, two verifications in fresh containers with no difference, and planted drifts (a
changed calibration file, a changed image lock, an edited converter, a source model swapped for
one with the same name), each caught with one line.

The commands run from a copy of edgeship's code (a snapshot) the way a user runs them: other
work on this checkout cannot change the code hash under a test, and a planted edit of the
converter or an image lock stays in its own copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from edgeship_runtime.files import sha256_file
from tests.support import ROOT, tiny_cnn

SNAPSHOT_ITEMS = ("dev", "tasks.py", "pyproject.toml", "edgeship", "targets", "runtime", "images")
VERIFY_LINE = "edgeship: verify: "
DIGITS_TARGETS = ("tflite", "onnx", "rk3588", "jetson", "openvino")  # every target whose image builds on x86 here


def snapshot_of(dest: Path, origin: Path = ROOT) -> Path:
    """A copy of edgeship's code as it is now (of this checkout, or of another snapshot), sharing
    this checkout's controller environment."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for item in SNAPSHOT_ITEMS:
        source = origin / item
        if source.is_dir():
            shutil.copytree(source, dest / item, ignore=ignore)
        else:
            shutil.copy2(source, dest / item)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def snapshot_env(snapshot: Path, extra: dict | None = None) -> dict:
    """The snapshot's packages ahead of the editable installs of this checkout (the controller
    imports edgeship_runtime too)."""
    return {**os.environ, "PYTHONPATH": f"{snapshot}{os.pathsep}{snapshot / 'runtime'}", **(extra or {})}


def cli(snapshot: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`invoke TASK ...` run from the snapshot, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=snapshot, capture_output=True, text=True, timeout=7200,
                          env=snapshot_env(snapshot, env))


def digits_project(folder: Path, digits: Path, targets=DIGITS_TARGETS) -> Path:
    """A user's project: the digits model and its data, and edgeship.toml for every mode of `targets`."""
    shutil.copytree(digits, folder / "models" / "digits")
    config = folder / "edgeship.toml"
    config.write_text(
        '[models.digits]\npath = "models/digits/model.onnx"\n'
        f'sha256 = "{sha256_file(folder / "models" / "digits" / "model.onnx")}"\n'
        'calibration = "models/digits/calib"\neval = "models/digits/eval.npz"\nlabels = "models/digits/labels.txt"\n'
        'preprocess = "models/digits/preprocess.json"\n\n'
        f'[[matrix]]\nmodels = ["digits"]\ntargets = {json.dumps(list(targets))}\n')
    return config


def verify_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line[len(VERIFY_LINE):] for line in result.stdout.splitlines() if line.startswith(VERIFY_LINE)]


def short(sha: str) -> str:
    return sha[:16]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    snapshot = snapshot_of(tmp_path_factory.mktemp("edgeship") / "edgeship")
    yield snapshot


@pytest.fixture(scope="module")
def digits_example():
    from edgeship.examples import build_examples

    (folder,) = build_examples(ROOT / "examples", names=("digits",))
    return folder


@pytest.fixture(scope="module")
def locked(snapshot, digits_example, tmp_path_factory):
    """The digits matrix built and locked once: (config, the build's output, seconds)."""
    config = digits_project(tmp_path_factory.mktemp("project"), digits_example)
    started = time.monotonic()
    result = cli(snapshot, "build", "--config", str(config))
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return config, result.stdout, seconds


@pytest.fixture
def project_copy(locked, tmp_path):
    """A copy of the locked project (models, data, edgeship.toml, conversions.lock) to plant a drift in."""
    config, _, _ = locked
    shutil.copytree(config.parent, tmp_path / "project", ignore=shutil.ignore_patterns("artifacts"))
    return tmp_path / "project" / "edgeship.toml"


def test_the_digits_matrix_is_locked_and_verified_twice_in_fresh_containers_with_no_difference(snapshot, locked):
    import targets

    config, build_output, build_seconds = locked
    lock_path = config.parent / "conversions.lock"
    lock = json.loads(lock_path.read_text())
    expected = {f"digits-{name}-{quant}" for name in DIGITS_TARGETS for quant in targets.get(name).quantizations}
    assert set(lock["entries"]) == expected
    for name, entry in lock["entries"].items():
        outputs = entry["outputs"]
        assert outputs["files"] and len(outputs["manifest_sha256"]) == 64, name
        assert entry["inputs"]["source"]["sha256"] == sha256_file(config.parent / "models" / "digits" / "model.onnx")
        assert ("calibration" in entry["inputs"]) == (entry["quant"] == "int8"), name
        assert set(entry["images"]) == {targets.get(entry["target"]).image, "onnx"}, name
        if entry["target"] == "rk3588":  # the compiler writes heap addresses: its bytes are checked by size, and said so
            assert not outputs["bytes_reproducible"] and "model.rknn" in outputs["not_byte_reproducible"] and "heap" in entry["note"]
            assert "reference/expected.npz" in outputs["files"] and "ops.json" in outputs["files"]
        else:
            assert outputs["bytes_reproducible"] and "note" not in entry, name
    print(f"\nlock: {len(expected)} entries, {lock_path.stat().st_size} bytes; build {build_seconds:.0f} s")
    # a second build converts nothing and writes the same lock
    again = cli(snapshot, "build", "--config", str(config))
    assert again.returncode == 0 and again.stdout.count(": cached") == len(expected), again.stdout[-2000:]
    assert json.loads(lock_path.read_text())["entries"] == lock["entries"]

    artifacts = config.parent / "artifacts"
    before = {path.name: (path / "manifest.json").stat().st_mtime for path in artifacts.iterdir() if path.is_dir()}
    for run in (1, 2):
        started = time.time()
        result = cli(snapshot, "verify", "--config", str(config))
        seconds = time.time() - started
        assert result.returncode == 0, "\n".join(verify_lines(result)) or result.stdout[-3000:] + result.stderr[-3000:]
        assert verify_lines(result) == []
        assert f"verified {len(expected)} entries against conversions.lock" in result.stdout and "0 differences" in result.stdout
        report = json.loads((artifacts / "verify" / "report.json").read_text())
        assert {name: item["status"] for name, item in report["entries"].items()} == dict.fromkeys(expected, "same")
        # every entry was converted again now (the graph clean-up too), into verify/, and the cache was left alone
        assert result.stdout.count("cleaning the graph of model.onnx") == len(expected)
        for name, item in report["entries"].items():
            assert (Path(item["artifact"]) / "manifest.json").stat().st_mtime >= started, name
        assert {path.name: (path / "manifest.json").stat().st_mtime for path in artifacts.iterdir()
                if path.is_dir() and path.name != "verify"} == before
        print(f"verify run {run}: {len(expected)} entries in {seconds:.0f} s, 0 differences")


def test_a_changed_calibration_file_is_named(snapshot, project_copy):
    lock = json.loads((project_copy.parent / "conversions.lock").read_text())["entries"]["digits-onnx-int8"]
    sample = project_copy.parent / "models" / "digits" / "calib" / "000.npy"
    np.save(sample, np.load(sample) * 4.0)  # a brighter sample: other activation ranges, other scales
    result = cli(snapshot, "verify", "--config", str(project_copy), "--entries", "digits-onnx-int8")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (line,) = verify_lines(result)
    from edgeship.convert.inputs import calibration_digest, calibration_files

    now = calibration_digest(calibration_files(sample.parent))
    assert line.startswith(f"digits-onnx-int8: model.onnx {short(lock['outputs']['files']['model.onnx'])} in the lock, ")
    assert line.endswith(f"; changed input: calibration models/digits/calib ({short(lock['inputs']['calibration']['sha256'])} in the lock, "
                         f"{short(now)} now)"), line


def test_an_edited_converter_is_named(snapshot, project_copy, tmp_path):
    edited = snapshot_of(tmp_path / "edited", origin=snapshot)
    converter = edited / "targets" / "onnx.py"
    source = converter.read_text()
    assert "per_channel=True" in source
    converter.write_text(source.replace("per_channel=True", "per_channel=False"))  # per-tensor weight scales: other bytes
    lock = json.loads((project_copy.parent / "conversions.lock").read_text())["entries"]["digits-onnx-int8"]
    result = cli(edited, "verify", "--config", str(project_copy), "--entries", "digits-onnx-int8")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    (line,) = verify_lines(result)
    report = json.loads((project_copy.parent / "artifacts" / "verify" / "report.json").read_text())["entries"]["digits-onnx-int8"]
    code_now = report["inputs"][0]["now"]
    assert line.startswith(f"digits-onnx-int8: model.onnx {short(lock['outputs']['files']['model.onnx'])} in the lock, "
                           f"{short(report['files'][0]['now'])} now")
    assert line.endswith(f"; changed input: code (targets/, runtime/edgeship_runtime/) ({short(lock['code_sha256'])} in the lock, "
                         f"{short(code_now)} now)"), line


def test_a_source_model_swapped_for_one_with_the_same_name_is_named(snapshot, project_copy):
    model = project_copy.parent / "models" / "digits" / "model.onnx"
    declared = sha256_file(model)
    tiny_cnn(model, classes=10)  # same file name, same input and output names and shapes, other weights
    swapped = sha256_file(model)
    # edgeship.toml still declares the old file: the swap is named before anything converts
    result = cli(snapshot, "verify", "--config", str(project_copy))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert verify_lines(result) == [f"digits: source model.onnx {short(swapped)} now, {short(declared)} declared in edgeship.toml and "
                                    f"locked: the model file was replaced; restore it, or declare the new sha256 and run `invoke build`"]
    assert "converting" not in result.stdout
    # declared anew but not locked: the conversion differs, and the source is the input that changed
    project_copy.write_text(project_copy.read_text().replace(declared, swapped))
    lock = json.loads((project_copy.parent / "conversions.lock").read_text())["entries"]["digits-onnx-fp32"]
    result = cli(snapshot, "verify", "--config", str(project_copy), "--entries", "digits-onnx-fp32")
    assert result.returncode == 1
    (line,) = verify_lines(result)
    assert line.startswith(f"digits-onnx-fp32: model.onnx {short(lock['outputs']['files']['model.onnx'])} in the lock, ")
    assert line.endswith(f"; changed input: source models/digits/model.onnx ({short(declared)} in the lock, {short(swapped)} now)"), line


def test_a_changed_image_lock_is_named(snapshot, project_copy, tmp_path, docker_client):
    """A new requirements.lock for the onnx image (one more comment line: the same packages) means
    a new image: verify builds it (wheels reused from the cache by their sha256) and converts in
    it. The same packages make the same model and data; the manifest, which records the image's
    lock, is the one output that differs, and the image lock is named as the input that changed."""
    from edgeship.paths import cache_root

    relocked = snapshot_of(tmp_path / "relocked", origin=snapshot)
    image_lock = relocked / "images" / "onnx" / "requirements.lock"
    before = sha256_file(image_lock)
    image_lock.write_text(image_lock.read_text() + "# planted by tests/container/convert/test_verify.py\n")
    after = sha256_file(image_lock)
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        result = cli(relocked, "verify", "--config", str(project_copy), "--entries", "digits-onnx-fp32")
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
        (line,) = verify_lines(result)
        locked = json.loads((project_copy.parent / "conversions.lock").read_text())["entries"]["digits-onnx-fp32"]
        report = json.loads((project_copy.parent / "artifacts" / "verify" / "report.json").read_text())["entries"]["digits-onnx-fp32"]
        assert [item["file"] for item in report["files"]] == ["manifest.json (without image ids)"]
        assert line == (f"digits-onnx-fp32: manifest.json (without image ids) {short(locked['outputs']['manifest_sha256'])} in the lock, "
                        f"{short(report['files'][0]['now'])} now; changed input: image onnx requirements.lock ({short(before)} in the lock, "
                        f"{short(after)} now)")
    finally:  # the image, its build's install stage and the wheelhouse this test made (links to the cached wheels)
        for image in docker_client.images.list("edgeship/onnx"):
            if image.labels.get("io.edgeship.lock.sha256") == after:
                docker_client.images.remove(image.id, force=True)
        for image in install_stages(docker_client, after, since):
            docker_client.images.remove(image.id, force=True)
        shutil.rmtree(cache_root() / "wheelhouse" / f"onnx-{after[:16]}", ignore_errors=True)


def install_stages(client, lock_sha256: str, since: str) -> list:
    """The untagged install stage an image build leaves behind (Docker's classic builder keeps
    it), told apart from other builds' by the requirements.lock it copied: read out of a
    created, never started, container."""
    found = []
    for image in client.images.list(filters={"dangling": True}):
        if image.attrs["Created"] < since or not any("/tmp/requirements.lock" in (row.get("CreatedBy") or "") for row in image.history()):
            continue
        container = client.containers.create(image.id, command=["true"], network_disabled=True)
        try:
            stream, _ = container.get_archive("/tmp/requirements.lock")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile("requirements.lock")
                copied = member.read() if member else b""
        finally:
            container.remove(force=True)
        if hashlib.sha256(copied).hexdigest() == lock_sha256:
            found.append(image)
    return found
