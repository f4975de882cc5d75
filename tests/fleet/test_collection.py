"""The collection edgeship.fleet on the simulated fleet: built by `invoke collection`'s code with the
real ansible-galaxy, installed into a collections path of its own, and its deploy playbook run as
AWX runs it (`ansible-playbook edgeship.fleet.deploy -i INVENTORY`: no repository folder, no
repository ansible.cfg) against one x86_64 board of the session fleet (jetson's CPU fallback). The board ends on a new
release whose release.json carries the label this run gave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fleet import host, recap

pytestmark = pytest.mark.fleet
BIN = Path(sys.executable).parent


def test_the_built_collection_deploys_to_a_board_by_its_fqcn(fleet, tmp_path):
    from edgeship.fleet.collection import build
    from edgeship.fleet.playbook import unsafe_extra_vars

    board = host("jetson")  # x86_64, sshd alone: its CPU fallback (onnx fp32) runs here
    tarball = build(tmp_path / "build")
    collections = tmp_path / "collections"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_FORCE_COLOR="0")
    installed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    before = fleet.current(board)
    extra = {"edgeship_release_artifacts_root": str(fleet.artifacts), "edgeship_release_label": "collection-test",
             "edgeship_release_models": ["digits"], "edgeship_bench_results_dir": str(fleet.results),
             "edgeship_release_demo": False}  # no camera demo (OpenCV's 50 MB of wheels): the deploy is what is tested
    result = subprocess.run([str(BIN / "ansible-playbook"), "edgeship.fleet.deploy", "-i", str(fleet.inventory), f"--limit={board}",
                             "--extra-vars", unsafe_extra_vars(extra)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    print(result.stdout[-6000:], result.stderr[-2000:])
    assert result.returncode == 0
    assert "TASK [edgeship.fleet.edgeship_release : " in result.stdout  # the roles came from the installed collection
    assert recap(result.stdout)[board]["failed"] == 0
    after = fleet.current(board)
    assert after and after != before, f"current still points at {before}"
    release = json.loads(fleet.board(board, "cat", f"/home/edge/edgeship/releases/{after}/release.json").stdout)
    assert release["label"] == "collection-test" and "host" not in release  # a bundle names no board: boards alike share one
