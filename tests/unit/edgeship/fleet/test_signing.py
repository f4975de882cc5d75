"""Release signatures on the controller: ssh-keygen signs a bundle in the release namespace, and
ssh-keygen on a board (here: this machine's) verifies it against the allowed-signers line only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet import signing


def verify(bundle: Path, signature: Path, allowed: str, folder: Path, namespace: str = signing.NAMESPACE) -> subprocess.CompletedProcess:
    """What the board runs (edgeship_release's install.yml), with the same arguments."""
    signers = folder / "allowed_signers"
    signers.write_text(allowed)
    with open(bundle, "rb") as message:
        return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", signing.PRINCIPAL, "-n", namespace,
                               "-s", str(signature)], stdin=message, capture_output=True, text=True, timeout=60)


@pytest.fixture
def key(tmp_path):
    return signing.make_key(tmp_path / "keys" / "release_ed25519")


def test_a_signed_bundle_verifies_and_one_changed_byte_does_not(tmp_path, key):
    bundle = tmp_path / "0123.tar"
    bundle.write_bytes(bytes(range(256)) * 64)
    signature = signing.sign(bundle, key)
    assert signature == tmp_path / "0123.tar.sig"
    allowed = signing.allowed_signers(key)
    assert allowed.startswith('edgeship-release namespaces="edgeship-release" ssh-ed25519 ')
    assert verify(bundle, signature, allowed, tmp_path).returncode == 0
    assert signing.sign(bundle, key).read_bytes() == signature.read_bytes()  # deterministic: an identical deploy stays a no-op
    data = bytearray(bundle.read_bytes())
    data[1000] ^= 0x01
    bundle.write_bytes(bytes(data))
    refused = verify(bundle, signature, allowed, tmp_path)
    assert refused.returncode != 0 and "incorrect signature" in refused.stderr


def test_another_key_or_another_namespace_does_not_verify(tmp_path, key):
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(b"release")
    signature = signing.sign(bundle, key)
    other = signing.allowed_signers(signing.make_key(tmp_path / "other" / "release_ed25519"))
    assert verify(bundle, signature, other, tmp_path).returncode != 0
    # the allowed-signers line lets the key sign releases only: a signature in another namespace fails
    assert verify(bundle, signature, signing.allowed_signers(key), tmp_path, namespace="git").returncode != 0


def test_a_missing_key_is_one_line_naming_it_and_how_to_make_one(tmp_path):
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(b"release")
    missing = r"signing key .*nowhere cannot be read \(No such file or directory\); make one with `ssh-keygen -t ed25519"
    with pytest.raises(EdgeshipError, match=missing):
        signing.sign(bundle, tmp_path / "nowhere")
    with pytest.raises(EdgeshipError, match=r"signing key .* is not a file"):
        signing.check_key(tmp_path)
    assert not (tmp_path / "b.tar.sig").exists()


def test_a_file_that_is_no_ssh_key_is_refused_in_one_line(tmp_path):
    bundle, key = tmp_path / "b.tar", tmp_path / "not-a-key"
    bundle.write_bytes(b"release")
    key.write_text("hello\n")
    key.chmod(0o600)
    with pytest.raises(EdgeshipError, match=r"signing key .*not-a-key is neither an SSH private key nor a public key line \(it starts b'hello'\)"):
        signing.sign(bundle, key)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n")  # looks like one, is not
    with pytest.raises(EdgeshipError, match=r"ssh-keygen could not sign .*b\.tar with .*not-a-key \(exit \d+: ") as caught:
        signing.sign(bundle, key)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "b.tar.sig").exists()


def test_an_allowed_signers_line_is_made_from_a_public_key_only():
    line = signing.allowed_signers_line("ssh-ed25519 AAAAC3Nza comment with spaces\n")
    assert line == 'edgeship-release namespaces="edgeship-release" ssh-ed25519 AAAAC3Nza\n'
    with pytest.raises(EdgeshipError, match=r"is not an OpenSSH public key line"):
        signing.allowed_signers_line("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_a_plan_with_a_missing_signing_key_stops_before_anything_is_packed(tmp_path):
    from edgeship.fleet.plan import make_plan

    board = {"host": "b1", "arch": "x86_64", "python": "3.11", "target": "onnx", "quant": "fp32"}
    with pytest.raises(EdgeshipError, match=r"signing key .*release_ed25519 cannot be read"):
        make_plan([board], tmp_path / "artifacts", bundles=tmp_path / "bundles", signing_key=tmp_path / "release_ed25519")
    assert not (tmp_path / "bundles").exists()
