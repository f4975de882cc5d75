"""The coral target on the simulated fleet: t-coral (the inventory's coral group, target coral)
gets the digits coral artifact through the real deploy playbook, from its own artifacts root and
under its own label, and bench.yml runs it there. The simulated board has no Edge TPU and no
libedgetpu, so detect says so and the artifact's own int8 model.tflite runs on LiteRT's CPU,
labelled as a fallback."""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.fleet
RELEASE = "/home/edge/edgeship/current"


def test_the_coral_artifact_deploys_to_the_coral_board_and_benchmarks_as_a_labelled_cpu_fallback(fleet, tmp_path_factory):
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request
    from edgeship.images.engine import ensure_engine

    client = ensure_engine()
    (folder,) = build_examples(ROOT / "examples", names=("digits",))
    root = tmp_path_factory.mktemp("coral-artifacts")
    coral = convert(example_request(folder, "coral", "int8", root, True), client=client)
    # the group's CPU target (tflite fp32): with a CPU artifact beside it the playbooks allow the fallback
    cpu = convert(example_request(folder, "tflite", "fp32", root, False), client=client)

    deployed = fleet.playbook("deploy.yml", limit="t-coral", edgeship_release_artifacts_root=str(root), edgeship_release_label="coral")
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    release = json.loads(fleet.board("t-coral", "cat", f"{RELEASE}/release.json").stdout)
    assert release["target"] == "coral" and release["label"] == "coral" and "litert" in release["extras"]
    assert release["bench"] == [{"model": "digits", "artifact": coral.name, "backend": "edgetpu", "cpu_artifact": cpu.name, "note": None}]
    shipped = fleet.board("t-coral", "ls", f"{RELEASE}/artifacts/{coral.name}").stdout.split()
    assert {"model.tflite", "edgetpu.json", "ops.json", "manifest.json"} <= set(shipped)
    assert json.loads(fleet.board("t-coral", "cat", f"{RELEASE}/artifacts/{coral.name}/edgetpu.json").stdout)["status"] == \
        json.loads((coral / "edgetpu.json").read_text())["status"]

    benched = fleet.playbook("bench.yml", limit="t-coral", edgeship_bench_run_id="coral-fallback")
    assert benched.returncode == 0, benched.stdout[-3000:]
    document = json.loads((fleet.results / "coral-fallback" / "t-coral.json").read_text())
    detect = document["detect"]
    assert detect["board"]["model"].startswith("Coral Dev Board") and "fsl,imx8mq-phanbell" in detect["board"]["compatible"]
    assert detect["accelerators"]["edgetpu"] == {"present": False, "usb": [], "pcie": [], "libedgetpu": None}
    assert "edgetpu" not in detect["available"]

    (result,) = document["results"]
    check, bench = result["check"], result["bench"]
    assert check["passed"] is True and check["backend"] == "litert" and check["compatibility"]["status"] in ("not-compiled", "no-runtime")
    fallback = bench["fallback"]
    # the board asked for the Edge TPU; without one, the artifact's own model.tflite ran on LiteRT's CPU, and says so
    assert fallback["cpu_fallback"] is True and fallback["requested"]["backend"] == "edgetpu" and fallback["used"]["backend"] == "litert"
    assert fallback["used"]["target"] == "coral" and fallback["used"]["artifact_sha256"] == fallback["requested"]["artifact_sha256"]
    assert "which this board lacks" in fallback["reason"] and "its own model.tflite runs on litert's CPU provider instead" in fallback["reason"]
    assert bench["accelerator"] == "cpu" and bench["backend"] == "litert" and bench["steady"]["mean_ms"] > 0
    summary = (fleet.results / "coral-fallback" / "summary.md").read_text()
    assert re.search(r"\| t-coral \| x86_64 \| coral \| digits \| litert \| CPU fallback", summary), summary
    print(f"t-coral digits coral int8 (CPU fallback): mean {bench['steady']['mean_ms']:.3f} ms, p90 {bench['steady']['p90_ms']:.3f} ms, "
          f"check cosine min {check['outputs']['logits']['cosine_min']:.5f}")
