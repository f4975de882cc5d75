"""deploy.yml verifies a bundle's signature on the board before unpacking it: an unsigned bundle, a
bundle changed after signing and a board without an allowed-signers file are each refused in one
line, nothing is unpacked and `current` stays.
Run for real on this machine as the board (connection local) with the real ssh-keygen, and a plan
made beforehand (edgeship_release_plan_file), as CI on the machine that holds the key would make it."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tarfile

import pytest

from edgeship.fleet import signing
from edgeship.fleet.playbook import run_playbook

RELEASE = {"bench": [], "extras": [], "pip_wheel": "pip-0-py3-none-any.whl", "runtime_wheel": "edgeship_runtime-0-py3-none-any.whl"}


def _bundle(folder):
    """A small valid bundle: release.json and SHA256SUMS (it would unpack and verify)."""
    import hashlib

    release = (json.dumps(RELEASE) + "\n").encode()  # what the plan says, as a real bundle carries it
    sums = f"{hashlib.sha256(release).hexdigest()}  release.json\n".encode()
    path = folder / "0123456789abcdef01234567.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("release.json", release), ("SHA256SUMS", sums)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _deploy(tmp_path, bundle, signature, allowed_signers, release=None):
    root = tmp_path / "edgeship"
    previous = root / "releases" / "r0"
    previous.mkdir(parents=True)
    (root / "current").symlink_to(previous)
    plan = {"release_id": "r1", "hosts": {"localhost": {
        "bundle": str(bundle), "signature": str(signature) if signature else None,
        "release": release or RELEASE}}}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[edgeship_boards]\n"
                         f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} edgeship_target=onnx\n")
    result = run_playbook("deploy.yml", inventory, None, {"edgeship_root": str(root), "edgeship_release_plan_file": str(plan_file),
                                                         "edgeship_release_allowed_signers": str(allowed_signers)}, capture=True)
    return result, root


def _refusal(output: str) -> str:
    """The rescue's one-line reason (Ansible prints it twice: its error line and the task result)."""
    lines = [line for line in output.splitlines() if "was NOT activated on localhost" in line]
    assert lines, output[-3000:]
    return lines[0]


@pytest.fixture
def signed(tmp_path):
    key = signing.make_key(tmp_path / "keys" / "release_ed25519")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(signing.allowed_signers(key))
    bundle = _bundle(tmp_path)
    return bundle, signing.sign(bundle, key), allowed


def _nothing_changed(root):
    assert os.readlink(root / "current") == str(root / "releases" / "r0")
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["r0"]  # the refused release's folder is gone


def _tampered(tmp_path, bundle, signature, allowed):
    data = bytearray(bundle.read_bytes())
    data[600] ^= 0x01  # one byte of release.json's content, after signing
    bundle.write_bytes(bytes(data))
    return bundle, signature, allowed


def _unsigned(tmp_path, bundle, signature, allowed):
    return bundle, None, allowed


def _no_allowed_signers(tmp_path, bundle, signature, allowed):
    return bundle, signature, tmp_path / "nowhere" / "allowed_signers"


@pytest.mark.parametrize(("change", "reason"), [
    (_tampered, r"Signature verification failed: incorrect signature"),
    (_unsigned, r"the bundle is unsigned \(no signature came with it\)"),
    (_no_allowed_signers, r"the board has no allowed-signers file .*nowhere/allowed_signers \(install it once, out of band, with trust\.yml\)"),
], ids=["tampered", "unsigned", "no-allowed-signers"])
def test_a_bundle_that_does_not_verify_is_refused_before_unpacking(tmp_path, signed, change, reason):
    result, root = _deploy(tmp_path, *change(tmp_path, *signed))
    assert result.returncode != 0
    line = _refusal(result.stdout)
    assert re.search(r'task "Ensure an unsigned or tampered bundle is refused.*" failed: bundle 0123456789abcdef01234567\.tar '
                     r"refused before unpacking: .*" + reason, line), line
    assert "still points at the previous release" in line
    assert "TASK [edgeship_release : Unpack the bundle" not in result.stdout
    _nothing_changed(root)


def test_a_signed_bundle_passes_verification_and_is_unpacked(tmp_path, signed):
    """The same run with the bundle as signed gets past the signature: it is unpacked and its sums
    checked, and stops only at installing the (absent) runtime wheel."""
    result, root = _deploy(tmp_path, *signed)
    line = _refusal(result.stdout)
    assert "refused before unpacking" not in line
    assert 'task "Ensure the runtime is installed offline' in line, line
    assert "Verify the unpacked files before installing anything from them" in result.stdout
    _nothing_changed(root)


def test_the_board_runs_what_the_signed_bundle_says_not_what_a_changed_plan_says(tmp_path, signed):
    """A plan file is not signed: a plan whose release points pip at another path is ignored for the
    verified bundle's release.json, and a plan that would copy a file that is no bundle is refused
    before anything is copied to the board."""
    evil = {**RELEASE, "pip_wheel": "../../../../bin/evil-pip"}
    result, root = _deploy(tmp_path, *signed, release=evil)
    line = _refusal(result.stdout)
    assert 'task "Ensure the runtime is installed offline' in line, line  # got as far as the signed bundle lets it
    assert "evil-pip" not in result.stdout
    _nothing_changed(root)

    secret = tmp_path / "id_ed25519"
    secret.write_text("not for the board\n")
    result, root = _deploy(tmp_path / "other", secret, None, signed[2]) if (tmp_path / "other").mkdir() is None else (None, None)
    assert result.returncode != 0 and "Ensure the release bundle is on the board" not in result.stdout
    assert "has no plan for localhost" in result.stdout
