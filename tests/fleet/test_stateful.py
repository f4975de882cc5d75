"""The stateful audio model on a board (issue 27): Silero VAD converted for onnx fp32 (t-jetson's CPU
artifact), deployed, and judged by the board's own `edgeship-runtime check`, which carries the
state step to step through each of the reference's sequences as the conversion did."""

from __future__ import annotations

import json

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.fleet
HOST = "t-jetson"


def test_the_boards_check_carries_the_vad_state_and_judges_frame_decisions(fleet, tmp_path):
    import targets
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request
    from edgeship.images.engine import ensure_engine

    folder = build_examples(ROOT / "examples", names=("vad",))[0]
    root = tmp_path / "vad-artifacts"
    root.mkdir()
    artifact = convert(example_request(folder, "onnx", "fp32", ROOT / "artifacts" / "tests", "fp32" in targets.get("onnx").needs_calibration),
                       client=ensure_engine())
    (root / artifact.name).symlink_to(artifact.resolve(), target_is_directory=True)
    result = fleet.playbook("deploy.yml", limit=HOST, edgeship_release_artifacts_root=str(root), edgeship_release_label="vad")
    assert result.returncode == 0, result.stdout[-3000:]
    release = json.loads(fleet.board(HOST, "cat", "/home/edge/edgeship/current/release.json").stdout)
    entry = next(e for e in release["bench"] if e["model"] == "vad")
    path = f"/home/edge/edgeship/current/artifacts/{entry['artifact'] or entry['cpu_artifact']}"
    check = fleet.board(HOST, "/home/edge/edgeship/current/venv/bin/edgeship-runtime", "check", path)
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    print(f"{HOST} check of vad: frame agreement {report['metrics']['frame_agreement']}, active F1 {report['metrics']['active_f1']}")
    assert report["passed"] and report["task"] == "frame-decisions" and report["samples"] == 262
    assert report["metrics"]["frame_agreement"] >= 0.99 and report["metrics"]["active"] > 50
    # what this board computed against what the conversion host computed, both carrying their own state
    assert report["metrics_vs_x86_converted"]["frame_agreement"] >= 0.99

    # the same artifact without its state pairs: the board feeds each step the eval set's zero state and fails
    copy = "/home/edge/vad-not-carried"
    assert fleet.board(HOST, "cp", "-r", path + "/", copy).returncode == 0
    drop = "import json, sys; p = sys.argv[1]; m = json.load(open(p)); del m['state']; json.dump(m, open(p, 'w'))"
    assert fleet.board(HOST, "python3", "-c", drop, f"{copy}/manifest.json").returncode == 0
    broken = json.loads(fleet.board(HOST, "/home/edge/edgeship/current/venv/bin/edgeship-runtime", "check", copy).stdout)
    assert not broken["passed"] and broken["metrics"]["frame_agreement"] < report["metrics"]["frame_agreement"]
