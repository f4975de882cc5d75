"""bench.yml brings each model's per-operator profile home inside its bench JSON (bench --profile,
edgeship_bench_profile_runs): run for real on this machine as the board (connection local), with
the real board runtime on a tiny ONNX model whose one big MatMul carries the time."""

from __future__ import annotations

import json
import sys

from edgeship.fleet.playbook import run_playbook
from tests.unit.runtime.test_profile import heavy_artifact


def test_bench_yml_brings_the_profile_home_in_the_bench_json(tmp_path):
    release = tmp_path / "edgeship" / "releases" / "r1"
    (release / "venv" / "bin").mkdir(parents=True)
    heavy_artifact(release / "artifacts" / "heavy-onnx-fp32")
    (release / "release.json").write_text(json.dumps({"target": "onnx", "bench": [
        {"model": "heavy", "artifact": "heavy-onnx-fp32", "cpu_artifact": None, "note": None}]}))
    runtime = release / "venv" / "bin" / "edgeship-runtime"
    runtime.write_text(f'#!/bin/sh\nexec {sys.executable} -m edgeship_runtime.cli "$@"\n')  # this checkout's runtime, as a release installs it
    runtime.chmod(0o755)
    (tmp_path / "edgeship" / "current").symlink_to(release)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[edgeship_boards]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")

    result = run_playbook("bench.yml", inventory, None, {
        "edgeship_root": str(tmp_path / "edgeship"), "edgeship_bench_results_dir": str(tmp_path / "results"),
        "edgeship_bench_run_id": "run1", "edgeship_bench_threads": 1, "edgeship_bench_profile_runs": 4,
        "edgeship_bench_args": ["--warmup-runs", "1", "--warmup-s", "0", "--min-runs", "3", "--min-s", "0"]}, capture=True)
    assert result.returncode == 0, (result.stdout or "")[-3000:]

    home = json.loads((tmp_path / "results" / "run1" / "localhost.json").read_text())
    profile = home["results"][0]["bench"]["profile"]
    assert profile["available"] is True and profile["runs"] == 4 and profile["backend"] == "onnxruntime"
    assert {entry["op"] for entry in profile["top"]} >= {"heavy", "widen", "narrow"}
