"""trust.yml, the out-of-band step: it installs the allowed-signers line of the controller's signing
key on the board, which then verifies that key's signatures (and only in the release namespace);
content that is not an allowed-signers line is refused before anything is written. Run for real
on this machine as the board (connection local, without become)."""

from __future__ import annotations

import subprocess
import sys

from edgeship.fleet import signing
from edgeship.fleet.playbook import run_playbook


def _trust(tmp_path, **extra):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[edgeship_boards]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    target = tmp_path / "board" / "etc" / "edgeship" / "allowed_signers"
    result = run_playbook("trust.yml", inventory, None, {"edgeship_allowed_signers": str(target), "edgeship_trust_become": False, **extra},
                          capture=True)
    return result, target


def test_trust_installs_the_signing_keys_line_and_the_board_verifies_with_it(tmp_path):
    key = signing.make_key(tmp_path / "keys" / "release_ed25519")
    result, target = _trust(tmp_path, edgeship_signing_key=str(key))
    assert result.returncode == 0, result.stdout[-3000:]
    assert target.read_text() == signing.allowed_signers(key)
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(b"a release")
    with open(bundle, "rb") as message:
        verified = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(target), "-I", signing.PRINCIPAL, "-n", signing.NAMESPACE,
                                   "-s", str(signing.sign(bundle, key))], stdin=message, capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr


def test_content_that_is_no_allowed_signers_line_is_refused_and_nothing_is_written(tmp_path):
    result, target = _trust(tmp_path, edgeship_trust_allowed_signers="-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    assert result.returncode != 0
    assert "the allowed signers for localhost are not lines of the form" in result.stdout, result.stdout[-3000:]
    assert not target.exists()
