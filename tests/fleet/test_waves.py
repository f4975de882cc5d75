"""Rollout in waves with a health gate after activation, on the simulated fleet (issue 30, items 1-2).

A planted slow artifact: the jetson fp16 digits artifact the fleet converted (a TensorRT-ready ONNX;
the simulated t-jetson has no TensorRT and runs it on ONNX Runtime's CPU provider), its graph given two
parallel copies of the network whose sum is multiplied by 0 and added to the logits (the outputs
are the model's to the bit; ONNX Runtime cannot fold a product with a value computed from the
input away), its manifest's sha256 entries written again, so it is a real artifact of the
converter's format that passes every sha256 and the accuracy check, and runs about 2.5x slower
(measured here with the runtime's own bench before the deploy).

Deployed to the x86 boards with the default waves (1 canary, 10 %, the rest): the canary
(t-jetson, first of them in the inventory) passes the check before
activation, fails the health gate after it, rolls itself back; the rollout stops after wave 1,
and over SSH the other boards still run the release they ran before.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.fleet import host, recap

pytestmark = pytest.mark.fleet
CANARY, OTHERS = host("jetson"), [host("coral"), host("rpi")]
BOARDS = [CANARY, *OTHERS]  # the inventory's order: the canary wave is t-jetson (the qemu board is left out: slow)


def slow_copy(artifact: Path, copies: int = 2) -> None:
    """Rewrite an onnx artifact in place: `copies` parallel copies of its graph (weights scaled a
    little, so no pass merges them with the original) whose sum x 0 is added to its output."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from edgeship_runtime.artifact import sha256_file

    manifest = json.loads((artifact / "manifest.json").read_text())
    path = artifact / manifest["artifact"]["file"]
    model = onnx.load(path)
    graph = model.graph
    output, source = graph.output[0].name, graph.input[0].name
    nodes, weights = list(graph.node), list(graph.initializer)
    for node in nodes:  # the original output becomes <output>@main; the sum below is the output again
        node.output[:] = [f"{name}@main" if name == output else name for name in node.output]
    ends = []
    for copy in range(copies):
        def renamed(name: str, copy=copy) -> str:
            return name if name in ("", source) else f"slow{copy}/{name.removesuffix('@main')}"
        for weight in weights:
            values = numpy_helper.to_array(weight)
            scaled = (values * values.dtype.type(1 + 1e-3 * (copy + 1))).astype(values.dtype)
            graph.initializer.append(numpy_helper.from_array(scaled, renamed(weight.name)))
        for node in nodes:
            twin = onnx.NodeProto()
            twin.CopyFrom(node)
            twin.name = renamed(node.name or node.op_type)
            twin.input[:] = [renamed(name) for name in node.input]
            twin.output[:] = [renamed(name) for name in node.output]
            graph.node.append(twin)
        ends.append(renamed(output))
    dtype = helper.tensor_dtype_to_np_dtype(graph.output[0].type.tensor_type.elem_type)  # an fp16 artifact's output may be fp16
    graph.initializer.append(numpy_helper.from_array(np.zeros((), dtype), "slow/zero"))
    total = ends[0]
    for index, end in enumerate(ends[1:]):
        graph.node.append(helper.make_node("Add", [total, end], [f"slow/sum{index}"], name=f"slow/sum{index}"))
        total = f"slow/sum{index}"
    graph.node.append(helper.make_node("Mul", [total, "slow/zero"], ["slow/nothing"], name="slow/times_zero"))
    graph.node.append(helper.make_node("Add", [f"{output}@main", "slow/nothing"], [output], name="slow/plus_nothing"))
    onnx.checker.check_model(model)
    onnx.save(model, path)
    # the files the manifest lists, as the converter writes them: ops.json and the manifest's own entries
    ops = dict(sorted(collections.Counter(node.op_type for node in graph.node).items()))
    manifest["artifact"].update(sha256=sha256_file(path), size=path.stat().st_size)
    manifest["files"][path.name] = sha256_file(path)
    if "ops.json" in manifest["files"]:
        report = json.loads((artifact / "ops.json").read_text())
        report.update(file_size=path.stat().st_size, op_count=sum(ops.values()), ops=ops)
        (artifact / "ops.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        manifest["files"]["ops.json"] = sha256_file(artifact / "ops.json")
    manifest["ops"] = ops
    (artifact / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def p50_ms(artifact: Path) -> float:
    runtime = Path(sys.executable).parent / "edgeship-runtime"
    # no TensorRT here: the jetson artifact's own ONNX runs on ONNX Runtime's CPU provider, as on the simulated board
    result = subprocess.run([str(runtime), "bench", str(artifact), "--allow-cpu-fallback", "--threads", "1", "--warmup-runs", "3",
                             "--warmup-s", "0.3", "--min-runs", "30", "--min-s", "1"], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)["steady"]["p50_ms"]


def currents_over_ssh(fleet) -> dict[str, str]:
    """Where each board's `current` points, asked over SSH through the inventory (host keys checked)."""
    ansible = Path(sys.executable).parent / "ansible"
    result = subprocess.run([str(ansible), ",".join(BOARDS), "-i", str(fleet.inventory), "-o", "-m", "ansible.builtin.command",
                             "-a", "readlink /home/edge/edgeship/current"], cwd=ROOT / "playbooks", capture_output=True, text=True, timeout=180,
                            env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "playbooks" / "ansible.cfg")))
    found = dict(re.findall(r"^(\S+) \| CHANGED \| rc=0 \| \(stdout\) \S*/releases/(\S+)$", result.stdout, re.MULTILINE))
    assert set(found) == set(BOARDS), result.stdout + result.stderr
    return found


def test_a_slow_release_fails_the_gate_on_the_canary_which_rolls_back_and_the_rollout_stops(fleet, tmp_path):
    good = fleet.playbook("deploy.yml", limit=",".join(BOARDS), edgeship_waves=["100%"])
    assert good.returncode == 0, good.stdout[-3000:]
    assert f"wave 1 of 1: {', '.join(BOARDS)}" in good.stdout and "the rollout is complete" in good.stdout
    before = currents_over_ssh(fleet)

    root = tmp_path / "artifacts"
    shutil.copytree(fleet.artifacts, root)
    original = next(p for p in sorted(fleet.artifacts.iterdir()) if p.name.startswith("digits-jetson-fp16-"))
    slow_copy(root / original.name)
    ratio = p50_ms(root / original.name) / p50_ms(original)
    assert 1.8 <= ratio <= 4, f"the planted artifact is {ratio:.2f}x the original here, not about 2x"

    slow = fleet.playbook("deploy.yml", limit=",".join(BOARDS), edgeship_release_artifacts_root=str(root), edgeship_release_label="waves-slow",
                          edgeship_waves=[1, "10%", "100%"])  # deploy.yml's default (the fleet tier's own is one wave)
    out = slow.stdout
    assert slow.returncode != 0, out[-3000:]
    # the canary passed its check before activation and was activated, then failed the gate and rolled back by itself
    assert re.search(rf"TASK \[edgeship_release : Check every artifact's accuracy[^\n]*\n(ok: \[{CANARY}\][^\n]*\n)+", out), out[-4000:]
    assert re.search(rf"TASK \[edgeship_release : Activate the release[^\n]*\nchanged: \[{CANARY}\]", out), out[-4000:]
    gate = re.search(rf"release (\S+) failed the health gate on {CANARY} [^\n]*digits-jetson-fp16: p50 [0-9.]+ ms is ([0-9.]+)x "
                     rf"the previous release's[^\n]*rolled back: \S+ points at {before[CANARY]} again", out)
    assert gate, out[-4000:]
    assert float(gate.group(2)) > 1.5
    assert re.search(rf"TASK \[edgeship_rollback : Switch the current link[^\n]*\nchanged: \[{CANARY}\]", out)
    # the summary names the wave, its board and why; the rollout stops there
    assert f"wave 1 of 3: {CANARY}" in out
    assert f"{CANARY}: FAILED: release {gate.group(1)} failed the health gate" in out
    assert "the rollout stops after wave 1: 1 of 1 boards failed or were lost" in out and f"not deployed: {', '.join(OTHERS)}" in out
    assert "wave 2 of 3" not in out and set(recap(out)) == set(BOARDS)  # the planning play reached every board...
    deploying = out.split("PLAY [Deploy the edgeship release to the boards, wave by wave]")[1]
    assert set(re.findall(r"^\S+: \[([^\]\s]+)", deploying, re.MULTILINE)) == {CANARY}  # ...the deploy only the canary

    assert currents_over_ssh(fleet) == before
    health = json.loads(fleet.board(CANARY, "cat", f"/home/edge/edgeship/releases/{gate.group(1)}/health.json").stdout)
    assert health["passed"] is False and health["previous"] == before[CANARY] and health["models"][0]["latency"]["ratio"] > 1.5
    assert fleet.board(CANARY, "test", "-e", f"/home/edge/edgeship/releases/{gate.group(1)}/.activated").returncode == 1
