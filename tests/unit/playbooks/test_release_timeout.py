"""deploy.yml bounds each model's accuracy check before activation on the board (`timeout`, with
Ansible's task `timeout:` above it as a backstop): a check that hangs is stopped, with what it
started, before the rescue runs (which removes the release folder the check runs in), the release
is not activated and the message names the model and the setting to raise. Run for real on this
machine as the board (connection local) with a release already installed (so nothing is unpacked
or installed), a stand-in `edgeship-runtime` that hangs, and a stand-in for the controller's
`python -m edgeship.fleet plan` (first on PYTHONPATH) that names that release."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

from edgeship.fleet.playbook import run_playbook
from tests.unit.playbooks.processes import alive_after

PLAN = {"release_id": "r1", "hosts": {"localhost": {"bundle": "/bundles/r1.tar", "signature": None, "release": {"bench": [
    {"model": "crawler", "artifact": "crawler-onnx-fp32", "cpu_artifact": None, "note": None}]}}}}


def _board(tmp_path):
    root = tmp_path / "edgeship"
    previous = root / "releases" / "r0"
    previous.mkdir(parents=True)
    (root / "current").symlink_to(previous)
    release = root / "releases" / "r1"
    (release / "venv" / "bin").mkdir(parents=True)
    (release / "artifacts" / "crawler-onnx-fp32").mkdir(parents=True)
    (release / ".complete").write_text("r1\n")  # installed before, so only the checks run again
    (release / "release.json").write_text(json.dumps(PLAN["hosts"]["localhost"]["release"]))
    (release / "SHA256SUMS").write_text(f"{hashlib.sha256((release / 'release.json').read_bytes()).hexdigest()}  release.json\n")
    runtime = release / "venv" / "bin" / "edgeship-runtime"
    runtime.write_text(f"#!/bin/sh\nPIDS='{tmp_path / 'hung.pids'}'\n"
                       'echo $$ >> "$PIDS"; sleep 30 & echo $! >> "$PIDS"; wait\n')
    runtime.chmod(0o755)
    planner = tmp_path / "planner" / "edgeship" / "fleet"
    planner.mkdir(parents=True)
    (planner.parent / "__init__.py").write_text("")
    (planner / "__init__.py").write_text("")
    (planner / "__main__.py").write_text(f"import sys\nsys.stdin.read()\nprint({json.dumps(json.dumps(PLAN))})\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[edgeship_boards]\n"
                         f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} edgeship_target=onnx\n")
    return inventory, root


def test_a_check_past_its_bound_is_stopped_before_the_rescue_and_the_release_is_not_activated(tmp_path, monkeypatch):
    inventory, root = _board(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "planner"), os.environ.get("PYTHONPATH", "")]))
    started = time.monotonic()
    result = run_playbook("deploy.yml", inventory, None, {"edgeship_root": str(root), "edgeship_release_check_timeout_s": 3},
                          capture=True)
    took = time.monotonic() - started
    assert result.returncode != 0, result.stdout[-3000:]
    assert ("release r1 was NOT activated on localhost (task \"Check every artifact's accuracy on the board with the release's "
            "runtime\" failed: crawler took longer than 3 s and was stopped; raise edgeship_release_check_timeout_s for this board") \
        in result.stdout, result.stdout[-3000:]
    assert os.readlink(root / "current") == str(root / "releases" / "r0")
    assert took < 40, f"the hung check held the run for {took:.0f} s"
    pids = [int(line) for line in (tmp_path / "hung.pids").read_text().split()]
    assert len(pids) == 2
    assert alive_after(pids, seconds=3) == [], "the hung check (or its child) still runs after its bound"
