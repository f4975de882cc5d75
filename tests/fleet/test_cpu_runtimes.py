"""The CPU runtimes of issue 28 on boards: the Pi runs digits on ncnn and MNN beside LiteRT, the x86 board
on OpenVINO, each checked and benchmarked on the board over SSH, and the bench JSON comes home per runtime."""

from __future__ import annotations

import json

import pytest

from tests.support.fleet import host, recap

pytestmark = pytest.mark.fleet


def test_the_pi_runs_ncnn_and_mnn_beside_litert_and_the_x86_board_runs_openvino(fleet):
    rpi, nuc = host("rpi"), host("nuc")
    limit = f"{rpi}:{nuc}"
    deployed = fleet.playbook("deploy.yml", limit)
    assert deployed.returncode == 0
    counters = recap(deployed.stdout)
    assert counters[rpi]["failed"] == 0 and counters[nuc]["failed"] == 0

    release = json.loads(fleet.board(rpi, "cat", "/home/edge/edgeship/current/release.json").stdout)
    assert set(release["extras"]) >= {"litert", "ncnn", "mnn"}  # the runtimes' wheels came in the offline wheelhouse
    probe = fleet.board(rpi, "/home/edge/edgeship/current/venv/bin/python", "-c", "import ncnn, MNN, ai_edge_litert; print('ok')")
    assert probe.returncode == 0 and probe.stdout.splitlines()[0] == "ok", probe.stderr  # MNN then prints what the CPU supports

    before = set(fleet.results.iterdir()) if fleet.results.is_dir() else set()
    benched = fleet.playbook("bench.yml", limit)
    assert benched.returncode == 0
    runs = [p for p in set(fleet.results.iterdir()) - before if p.is_dir()]
    assert len(runs) == 1, runs
    pi = json.loads((runs[0] / f"{rpi}.json").read_text())
    digits = [result for result in pi["results"] if result["model"] == "digits"]
    by_backend = {result["bench"]["backend"]: result for result in digits}
    assert list(by_backend) == ["litert", "ncnn", "mnn"]  # the board's own target first, then its extra targets
    for backend, result in by_backend.items():
        assert result["check"]["passed"] is True, (backend, result["check"].get("failed"))
        assert result["check"]["artifact"]["backend"] == backend  # each runtime's own check, not the model's first one
        assert result["bench"]["fallback"] is None and result["bench"]["accelerator"] == "cpu"
        assert result["bench"]["steady"]["mean_ms"] > 0
    assert {by_backend[b]["bench"]["artifact"]["target"] for b in ("ncnn", "mnn")} == {"ncnn", "mnn"}

    x86 = json.loads((runs[0] / f"{nuc}.json").read_text())
    assert x86["detect"]["arch"] == "x86_64" and x86["detect"]["board"]["model"].startswith("Intel NUC 13 Pro")
    ov = next(result for result in x86["results"] if result["model"] == "digits")
    assert ov["bench"]["backend"] == "openvino" and ov["bench"]["artifact"]["target"] == "openvino"
    assert ov["bench"]["fallback"] is None and ov["check"]["passed"] is True
    assert ov["bench"]["steady"]["mean_ms"] > 0
