"""Host keys stay checked whatever runs the tasks (playbooks/ansible.cfg runs them with Mitogen): a
board whose key is missing from the known_hosts file the inventory names, or differs from the key
kept there, is refused before any task runs on it, and its `current` stays where it was."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.fleet import host, recap

pytestmark = pytest.mark.fleet


def _inventory_knowing(fleet, folder, known_hosts: str):
    """The fleet's inventory in a folder of its own whose .sim/known_hosts holds known_hosts (the
    controller's key is the fleet's, so the board would let it in)."""
    from edgeship.fleet import sim

    state = folder / ".sim"
    state.mkdir(parents=True)
    shutil.copy2(sim.state_dir(fleet.inventory) / "controller_ed25519", state / "controller_ed25519")
    (state / "known_hosts").write_text(known_hosts)
    inventory = folder / "inventory.ini"
    shutil.copyfile(fleet.inventory, inventory)
    return inventory


@pytest.mark.parametrize("known", ["missing", "changed"])
def test_a_board_whose_host_key_is_not_the_known_one_is_refused(fleet, tmp_path, known):
    from edgeship.fleet import sim
    from edgeship.fleet.playbook import run_playbook

    board = host("rpi")
    port = {b.host: b for b in sim.read_inventory(fleet.inventory)}[board].port
    known_hosts = ""
    if known == "changed":  # the board's entry names another key: what a man in the middle would show
        made = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], capture_output=True, timeout=60)
        assert made.returncode == 0, made.stderr
        kind, blob = (tmp_path / "other.pub").read_text().split()[:2]
        known_hosts = f"[127.0.0.1]:{port} {kind} {blob}\n"
    before = fleet.current(board)
    inventory = _inventory_knowing(fleet, tmp_path / "inventory", known_hosts)
    result = run_playbook("deploy.yml", inventory, board, {"edgeship_release_artifacts_root": str(fleet.artifacts)}, capture=True)
    print(result.stdout[-4000:])
    assert result.returncode != 0
    assert recap(result.stdout)[board]["unreachable"] == 1
    assert re.search(r"host key", result.stdout, re.IGNORECASE), result.stdout[-3000:]
    assert "TASK [edgeship_release" not in result.stdout
    assert fleet.current(board) == before
