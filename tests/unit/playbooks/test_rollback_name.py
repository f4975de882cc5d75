"""rollback.yml takes a release id that is a name, never a path: `-e edgeship_rollback_to=../..` (or
a name with a newline) fails before the current link is touched. Run for real on this machine
as the board (connection local)."""

from __future__ import annotations

import os
import sys

import pytest

from edgeship.fleet.playbook import run_playbook


@pytest.mark.parametrize("release_id", ["../../tmp", "r1\n", "-r1", "r1/../../x"])
def test_a_release_id_that_is_a_path_is_refused_and_the_link_stays(tmp_path, release_id):
    root = tmp_path / "edgeship"
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "current").symlink_to(root / "releases" / "r1")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[edgeship_boards]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    result = run_playbook("rollback.yml", inventory, None, {"edgeship_root": str(root), "edgeship_rollback_to": release_id}, capture=True)
    assert result.returncode != 0
    assert "is not a release name (1-64 letters, digits" in result.stdout, result.stdout[-3000:]
    assert os.readlink(root / "current") == str(root / "releases" / "r1")
