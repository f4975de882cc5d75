"""Bad-input corpus, family `release signing`: the key `python -m edgeship.fleet plan --signing-key`
(deploy.yml's planner) signs release bundles with. Each is refused in one line naming the key and
how to make one, before anything is packed (no bundle is written)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgeship.paths import REPO_ROOT
from tests.support.badinput import BOUND_S, assert_one_clean_line

PREFIX = "edgeship: error: "
BOARDS = '[{"host": "b1", "arch": "x86_64", "python": "3.11", "target": "onnx", "quant": "fp32"}]'


def _missing(folder):
    return folder / "release_ed25519"


def _folder(folder):
    (folder / "keys").mkdir()
    return folder / "keys"


def _not_a_key(folder):
    key = folder / "release_ed25519"
    key.write_text("ssh-keygen -t ed25519 -f release_ed25519\n")  # a note where the key should be
    return key


def _private_key_of_another_tool(folder):
    key = folder / "minisign.key"
    key.write_text("untrusted comment: minisign encrypted secret key\nRWRTY0IyAAAA\n")
    return key


def _link_to_nothing(folder):
    key = folder / "release_ed25519"
    os.symlink(folder / "gone", key)
    return key


CASES = [
    ("missing", _missing, r"signing key .*release_ed25519 cannot be read \(No such file or directory\); make one with `ssh-keygen -t ed25519"),
    ("a folder", _folder, r"signing key .*keys is not a file; make one with"),
    ("not a key", _not_a_key, r"signing key .*release_ed25519 is neither an SSH private key nor a public key line \(it starts b'ssh-keygen"),
    ("a minisign key", _private_key_of_another_tool, r"signing key .*minisign\.key is neither an SSH private key nor a public key line"),
    ("a dangling link", _link_to_nothing, r"signing key .*release_ed25519 cannot be read \(No such file or directory\)"),
]
KINDS = [("release signing", kind) for kind, _, _ in CASES]


@pytest.mark.parametrize(("kind", "make", "pattern"), CASES, ids=[kind for kind, _, _ in CASES])
def test_a_bad_signing_key_is_refused_in_one_line_before_anything_is_packed(tmp_path, kind, make, pattern):
    key, cache = make(tmp_path), tmp_path / "cache"
    try:  # the boards come on stdin, as deploy.yml gives them
        result = subprocess.run([sys.executable, "-m", "edgeship.fleet", "plan", "--artifacts", str(tmp_path / "artifacts"),
                                 "--signing-key", str(key)], input=BOARDS, capture_output=True, text=True, timeout=BOUND_S,
                                cwd=REPO_ROOT, env={**os.environ, "EDGESHIP_CACHE": str(cache)})
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the planner hung on a signing key that is {kind}") from None
    assert_one_clean_line(result, PREFIX, pattern)
    assert not (cache / "bundles").exists()
