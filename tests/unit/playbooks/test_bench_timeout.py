"""bench.yml bounds each model's check and benchmark on a board (`timeout` on the board, per model,
with Ansible's task `timeout:` above it as a backstop), and a model that runs past its bound fails
the board with a message naming the board, the model, the bound and the setting to raise, and is
gone afterwards, with what it started (Ansible's `timeout:` alone only stopped waiting: the model
ran on). Run for real on this machine as the board (connection local), with a stand-in
`edgeship-runtime` that hangs."""

from __future__ import annotations

import json
import sys
import time

import pytest

from edgeship.fleet.playbook import run_playbook
from tests.unit.playbooks.processes import alive_after

RUNTIME = """#!/bin/sh
PIDS='{pids}'
case "$1" in
  detect) echo '{{"arch": "x86_64"}}' ;;
  check) {check} ;;
  bench) {bench} ;;
esac
"""
# the hung runtime notes its own pid and a child's, so the test can see whether they outlive the bound
HANG = 'echo $$ >> "$PIDS"; sleep 30 & echo $! >> "$PIDS"; wait'
OK = "echo '{}'"


def _board(tmp_path, check: str, bench: str):
    release = tmp_path / "edgeship" / "releases" / "r1"
    (release / "venv" / "bin").mkdir(parents=True)
    (release / "artifacts").mkdir()
    (release / "release.json").write_text(json.dumps({"target": "onnx", "bench": [
        {"model": "quick", "artifact": "quick-onnx-fp32", "cpu_artifact": None, "note": None},
        {"model": "crawler", "artifact": "crawler-onnx-fp32", "cpu_artifact": None, "note": None}]}))
    runtime = release / "venv" / "bin" / "edgeship-runtime"
    # the first model answers at once; the second hangs where asked to
    runtime.write_text(RUNTIME.format(pids=tmp_path / "hung.pids", check=f'case "$2" in *crawler*) {check} ;; *) echo "{{}}" ;; esac',
                                      bench=f'case "$2" in *crawler*) {bench} ;; *) echo "{{}}" ;; esac'))
    runtime.chmod(0o755)
    (tmp_path / "edgeship" / "current").symlink_to(release)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[edgeship_boards]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    return inventory


@pytest.mark.parametrize(("check", "bench", "task", "setting"), [
    (HANG, OK, "the accuracy check", "edgeship_bench_check_timeout_s"),
    (OK, HANG, "the benchmark", "edgeship_bench_timeout_s"),
])
def test_a_model_past_its_bound_fails_the_board_naming_it_and_the_setting(tmp_path, check, bench, task, setting):
    inventory = _board(tmp_path, check, bench)
    started = time.monotonic()
    result = run_playbook("bench.yml", inventory, None, {
        "edgeship_root": str(tmp_path / "edgeship"), "edgeship_bench_results_dir": str(tmp_path / "results"),
        "edgeship_bench_check_timeout_s": 3, "edgeship_bench_timeout_s": 3}, capture=True)
    took = time.monotonic() - started
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"localhost: crawler took longer than 3 s in {task} and was stopped; raise {setting} for this board" in result.stdout, \
        result.stdout[-3000:]
    assert "quick took longer" not in result.stdout
    assert took < 25, f"the hung model held the run for {took:.0f} s"
    pids = [int(line) for line in (tmp_path / "hung.pids").read_text().split()]
    assert len(pids) == 2
    assert alive_after(pids, seconds=3) == [], "the hung model (or its child) still runs after its bound"

