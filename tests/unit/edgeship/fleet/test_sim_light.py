"""Light boards: the inventory `sim.up --light N` writes beside the user's, read by the real
ansible-inventory (no Docker: what starts the containers is the fleet tier's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeship.errors import EdgeshipError
from edgeship.fleet import sim
from edgeship.fleet.sim import light
from tests.support import ROOT

INVENTORY = sys.executable.rsplit("/", 1)[0] + "/ansible-inventory"


def _inventory(folder: Path) -> Path:
    path = folder / "inventory.ini"
    path.write_text((ROOT / "inventory.ini").read_text())
    return path


def _host(*sources: Path, host: str) -> dict:
    args = [a for s in sources for a in ("-i", str(s))]
    result = subprocess.run([INVENTORY, *args, "--host", host], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def test_light_boards_join_the_named_ones_in_the_simulator_and_stand_alone_for_ansible(tmp_path):
    inventory = _inventory(tmp_path)
    named = [b.host for b in sim.read_inventory(inventory)]
    path = light.write(sim.state_dir(inventory), 3, "hs-l", 23400)
    assert path == tmp_path / ".sim" / "light.ini"
    boards = sim.read_inventory(inventory)
    assert [b.host for b in boards] == named + ["hs-l01", "hs-l02", "hs-l03"]
    assert [(b.port, b.arch, b.init) for b in boards[-3:]] == [(23401, "amd64", "sshd"), (23402, "amd64", "sshd"), (23403, "amd64", "sshd")]
    alone = _host(path, host="hs-l02")  # the file on its own is a whole inventory for the playbooks
    assert (alone["edgeship_target"], alone["edgeship_arch"], alone["ansible_port"]) == ("tflite", "x86_64", 23402)
    assert alone["ansible_ssh_private_key_file"] == str(tmp_path / ".sim" / "controller_ed25519")
    assert alone["edgeship_signing_key"] == str(tmp_path / ".sim" / "release_ed25519")
    beside = _host(inventory, path, host="hs-l02")  # with the user's: its own settings win over [sim:vars]' inventory_dir ones
    assert beside["ansible_ssh_private_key_file"] == alone["ansible_ssh_private_key_file"]
    groups = json.loads(subprocess.run([INVENTORY, "-i", str(path), "--list"], capture_output=True, text=True, timeout=120, check=True).stdout)
    assert groups["edgeship_boards"]["children"] == ["light"]


def test_no_light_boards_removes_their_inventory(tmp_path):
    inventory = _inventory(tmp_path)
    light.write(sim.state_dir(inventory), 2, "hs-l", 23400)
    assert light.write(sim.state_dir(inventory), 0, "hs-l", 23400) is None
    assert not (tmp_path / ".sim" / "light.ini").exists()
    assert "hs-l01" not in [b.host for b in sim.read_inventory(inventory)]


@pytest.mark.parametrize(("count", "prefix", "port", "message"), [
    (100, "sim-l", 22400, r"--light 100: give a number of light boards from 0 to 99"),
    (-1, "sim-l", 22400, r"--light -1: give a number"),
    (3, "../x", 22400, r"--light-prefix"),
    (3, "sim-l", 65534, r"--light-port 65534: the boards take ports 65535-65537; give a base from 1024 to 65532"),
    (3, "sim-l", 80, r"--light-port 80: .* give a base from 1024"),
])
def test_bad_light_settings_are_refused_before_anything_is_written(tmp_path, count, prefix, port, message):
    with pytest.raises(EdgeshipError, match=message):
        light.write(tmp_path / ".sim", count, prefix, port)
    assert not (tmp_path / ".sim").exists()
