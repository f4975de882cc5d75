"""The health gate the edgeship_health role runs on a board after activation (roles/edgeship_health/files/health_gate.py).

Each release here is a real folder layout (releases/<id>/ with release.json, checks/, venv/bin/edgeship-runtime)
with `current` a real link; the runtime in it is a stand-in that answers `check` and `bench` with the figures
the test gives it (the fleet test runs the real runtime on real artifacts), so every verdict is the gate's own."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT

GATE = ROOT / "playbooks" / "roles" / "edgeship_health" / "files" / "health_gate.py"
spec = importlib.util.spec_from_file_location("health_gate", GATE)
assert spec and spec.loader
health_gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(health_gate)

STAND_IN = f"""#!{sys.executable}
import json, pathlib, sys
release = pathlib.Path(__file__).resolve().parents[2]
with open(release / "calls.log", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "check":
    report = json.loads((release / "check.json").read_text())
    print(json.dumps(report))
    sys.exit(0 if report["passed"] else 1)
figures = (release / "p50.txt").read_text().split()
(release / "p50.txt").write_text(" ".join(figures[1:] or figures))
if figures[0] == "fail":
    print("edgeship-runtime: error: the backend did not load", file=sys.stderr)
    sys.exit(2)
print(json.dumps({{"steady": {{"p50_ms": float(figures[0])}}}}))
"""


def check_report(top1: float = 1.0, passed: bool = True) -> dict:
    return {"passed": passed, "failed": [] if passed else ["logits: top1_agreement 0.5 < 0.99"], "task": "classify",
            "metrics": {"top1_agreement": top1}, "tolerances": {"min_top1_agreement": 0.99, "min_cosine": 0.9999, "max_range_error": 0.001}}


def release(root: Path, name: str, p50: str, check: dict | None = None, models=("digits",), cpu_only: bool = False,
            kept_as: str = "artifact") -> Path:
    folder = root / "releases" / name
    (folder / "venv" / "bin").mkdir(parents=True)
    runtime = folder / "venv" / "bin" / "edgeship-runtime"
    runtime.write_text(STAND_IN)
    runtime.chmod(0o755)
    bench = [{"model": m, "artifact": None if cpu_only else f"{m}-jetson-fp16-0", "cpu_artifact": f"{m}-onnx-fp32-0", "note": None} for m in models]
    (folder / "release.json").write_text(json.dumps({"bench": bench, "target": "jetson"}))
    (folder / "check.json").write_text(json.dumps(check or check_report()))
    (folder / "p50.txt").write_text(p50)
    (folder / "checks").mkdir()
    for entry in bench:  # what deploy.yml's check kept (check --record): per artifact, or per model as releases kept it before
        kept = entry["model"] if kept_as == "model" else entry["artifact"] or entry["cpu_artifact"]
        (folder / "checks" / f"{kept}.json").write_text(json.dumps({"fingerprint": "x", "report": check or check_report()}))
    return folder


def activate(root: Path, name: str) -> None:
    link = root / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(root / "releases" / name)


def gate(root: Path, new: str, previous: str = "", *extra: str) -> tuple[int, dict | None, str]:
    result = subprocess.run([sys.executable, str(GATE), "--root", str(root), "--release", new, "--previous", previous, "--threads", "1",
                             "--allow-cpu-fallback", "--bench-arg=--min-runs", "--bench-arg=30", *extra],
                            capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def test_a_release_as_fast_and_accurate_as_the_previous_one_passes_and_its_verdict_is_kept(tmp_path):
    release(tmp_path, "A", "1.0 1.0")
    release(tmp_path, "B", "1.05")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 0 and verdict["passed"] and verdict["reasons"] == []
    assert verdict["models"][0]["latency"] == {"previous_p50_ms": [1.0, 1.0], "p50_ms": 1.05, "ratio": 1.05, "noise": 0.0, "limit": 1.5,
                                               "noisy": False, "passed": True, "rounds": 1}
    assert json.loads((tmp_path / "releases" / "B" / "health.json").read_text()) == verdict
    # the check ran through `current`; the benches ran previous, new, previous, each with the deploy's fallback flags
    calls = [json.loads(line) for line in (tmp_path / "releases" / "B" / "calls.log").read_text().splitlines()]
    assert calls[0][:2] == ["check", str(tmp_path / "current" / "artifacts" / "digits-jetson-fp16-0")]
    assert calls[1] == ["bench", str(tmp_path / "releases" / "B" / "artifacts" / "digits-jetson-fp16-0"), "--allow-cpu-fallback",
                        "--cpu-artifact", str(tmp_path / "releases" / "B" / "artifacts" / "digits-onnx-fp32-0"), "--threads", "1", "--min-runs", "30"]
    assert len((tmp_path / "releases" / "A" / "calls.log").read_text().splitlines()) == 2


def test_a_release_twice_as_slow_fails_naming_the_model_the_ratio_and_the_limit(tmp_path):
    release(tmp_path, "A", "1.0 1.02")
    release(tmp_path, "B", "2.02")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1 and not verdict["passed"]
    assert verdict["reasons"] == ["digits-jetson-fp16: p50 2.02 ms is 2.00x the previous release's 1.01 ms "
                                  "(limit 1.50x: edgeship_health_latency_ratio_max 1.5, run-to-run noise 2%)"]
    assert json.loads((tmp_path / "releases" / "B" / "health.json").read_text())["passed"] is False


def test_a_board_noisier_than_the_limit_widens_it_instead_of_rolling_back_for_its_own_jitter(tmp_path):
    release(tmp_path, "A", "1.0 1.5")  # the previous release itself moved 50 % between two benches
    release(tmp_path, "B", "1.9")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 0, verdict
    assert verdict["models"][0]["latency"]["noise"] == 0.5 and verdict["models"][0]["latency"]["limit"] == 2.0


@pytest.mark.parametrize("kept_as", ["artifact", "model"])
def test_an_accuracy_drop_beyond_the_allowed_one_fails_by_the_tasks_own_metric(tmp_path, kept_as):
    release(tmp_path, "A", "1.0", kept_as=kept_as)
    release(tmp_path, "B", "1.0", check=check_report(top1=0.985))  # still above the task's tolerance, so the check passes
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1 and verdict["reasons"] == ["digits-jetson-fp16: top1_agreement 0.985, was 1 (more than 0.01 worse)"]
    code, verdict, _ = gate(tmp_path, "B", "A", "--accuracy-drop-max", "0.02")
    assert code == 0, verdict


def test_a_check_that_fails_after_activation_fails_the_gate(tmp_path):
    release(tmp_path, "A", "1.0")
    release(tmp_path, "B", "1.0", check=check_report(passed=False))
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1 and verdict["reasons"] == ["digits-jetson-fp16: the check after activation failed: logits: top1_agreement 0.5 < 0.99"]


def test_the_first_release_is_gated_on_its_check_alone_and_says_so(tmp_path):
    release(tmp_path, "B", "fail")  # nothing is benched: there is nothing to compare with
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B")
    assert code == 0 and verdict["previous"] is None
    assert verdict["notes"] == ["first release on this board: nothing to compare with, gated on its check alone"]
    assert len((tmp_path / "releases" / "B" / "calls.log").read_text().splitlines()) == 1


def test_a_new_model_and_a_previous_release_that_does_not_bench_are_noted_not_failed(tmp_path):
    release(tmp_path, "A", "fail")
    release(tmp_path, "B", "1.0", models=("digits", "ppocr-det"))
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 0, verdict
    assert verdict["notes"] == [
        "digits-jetson-fp16: the previous release did not bench (edgeship-runtime: error: the backend did not load); latency not compared",
        "ppocr-det-jetson-fp16: the previous release did not run it; gated on its check alone"]


def test_a_new_release_that_does_not_bench_fails(tmp_path):
    release(tmp_path, "A", "1.0")
    release(tmp_path, "B", "fail")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1
    assert verdict["reasons"] == ["digits-jetson-fp16: the bench after activation failed: edgeship-runtime: error: the backend did not load"]


@pytest.mark.parametrize(("setup", "message"), [
    ("not current", "does not point at"),
    ("unsafe artifact", 'artifact "../../elsewhere" is not a release or artifact name'),
    ("unsafe release", "release \"../B\" is not a release or artifact name"),
])
def test_what_the_gate_cannot_judge_is_one_line_and_exit_2(tmp_path, setup, message):
    release(tmp_path, "A", "1.0")
    folder = release(tmp_path, "B", "1.0")
    activate(tmp_path, "A" if setup == "not current" else "B")
    if setup == "unsafe artifact":
        (folder / "release.json").write_text(json.dumps({"bench": [{"model": "digits", "artifact": None, "cpu_artifact": "../../elsewhere"}]}))
    code, verdict, stderr = gate(tmp_path, "../B" if setup == "unsafe release" else "B", "A")
    assert code == 2 and verdict is None
    assert len(stderr.splitlines()) == 1 and stderr.startswith("health_gate: error: ") and message in stderr, stderr
    assert "Traceback" not in stderr


def test_the_verdict_replaces_a_link_planted_at_health_json_instead_of_writing_through_it(tmp_path):
    release(tmp_path, "A", "1.0")
    folder = release(tmp_path, "B", "1.0")
    activate(tmp_path, "B")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(victim, folder / "health.json")
    assert gate(tmp_path, "B", "A")[0] == 0
    assert victim.read_text() == "untouched" and not (folder / "health.json").is_symlink()


def test_latency_and_accuracy_rules():
    verdict = health_gate.latency_verdict([1.0, 1.1], 1.6, ratio_max=1.5, noise_factor=2, noise_floor=0.02)
    assert verdict["passed"] is False and verdict["ratio"] == 1.524 and verdict["limit"] == 1.5
    assert health_gate.latency_verdict([1.0], 1.0, 1.5, 2, 0.3)["limit"] == 1.6  # the floor alone widens it
    # a max_ tolerance is judged the other way; counts and metrics the previous check lacks are not compared;
    # a judged metric the previous check has and the new one lost is a failure
    new = {"metrics": {"f1": 0.9, "error": 0.2, "boxes": 3, "iou": 0.5}, "tolerances": {"min_f1": 0.8, "max_error": 0.5, "min_pck": 0.9,
                                                                                       "min_iou": 0.4}}
    old = {"metrics": {"f1": 0.95, "error": 0.1, "boxes": 9, "pck": 1.0}}
    assert health_gate.accuracy_drops(new, old, 0.01) == ["error 0.2, was 0.1 (more than 0.01 worse)", "f1 0.9, was 0.95 (more than 0.01 worse)",
                                                          "pck is missing after activation, was 1 (a judged metric must be a finite number)"]


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "NaN"), (float("inf"), "Infinity"), (None, "null"), ("0.99", '"0.99"'),
                                              (True, "true"), ("absent", "missing")])
def test_a_judged_metric_that_went_missing_or_not_finite_fails_instead_of_passing_uncompared(value, shown):
    metrics = {} if value == "absent" else {"top1_agreement": value}
    new = {"metrics": metrics, "tolerances": {"min_top1_agreement": 0.99}}
    assert health_gate.accuracy_drops(new, check_report(), 0.01) == [
        f"top1_agreement is {shown} after activation, was 1 (a judged metric must be a finite number)"]
    # a previous check without a finite figure has nothing to compare with
    assert health_gate.accuracy_drops(new, {"metrics": {"top1_agreement": float("nan")}}, 0.01) == []


def test_a_release_whose_check_reports_nan_fails_the_gate(tmp_path):
    release(tmp_path, "A", "1.0")
    release(tmp_path, "B", "1.0", check=check_report(top1=float("nan")))
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1 and verdict["reasons"] == [
        "digits-jetson-fp16: top1_agreement is NaN after activation, was 1 (a judged metric must be a finite number)"]


@pytest.mark.parametrize("p50", ["nan", "inf", "0", "-1"])
def test_a_bench_time_that_is_not_a_positive_finite_number_is_no_time(tmp_path, p50):
    release(tmp_path, "A", "1.0")
    release(tmp_path, "B", p50)
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1 and len(verdict["reasons"]) == 1
    assert verdict["reasons"][0].startswith("digits-jetson-fp16: the bench after activation failed: the bench of B gave a p50 of ")
    assert verdict["reasons"][0].endswith(" ms, not a positive finite time")


def test_the_widened_limit_has_a_ceiling():
    # noise 80 % x factor 4 would allow 4.2x; the ceiling is twice ratio_max unless given
    verdict = health_gate.latency_verdict([1.0, 1.8], 4.5, ratio_max=1.5, noise_factor=4, noise_floor=0.02, noise_max=1.0)
    assert verdict["limit"] == 3.0 and verdict["ratio"] == 3.214 and verdict["passed"] is False
    assert health_gate.latency_verdict([1.0, 1.8], 4.5, 1.5, 4, 0.02, limit_max=4.0, noise_max=1.0)["limit"] == 4.0


def test_above_the_noise_bound_the_limit_is_not_widened_and_the_fastest_previous_run_is_the_base():
    verdict = health_gate.latency_verdict([10.0, 30.0], 27.5, ratio_max=1.5, noise_factor=2, noise_floor=0.02, noise_max=0.5)
    assert verdict["noisy"] is True and verdict["limit"] == 1.5 and verdict["ratio"] == 2.75 and verdict["passed"] is False
    assert health_gate.latency_verdict([10.0, 30.0], 12.0, 1.5, 2, 0.02, noise_max=0.5)["passed"] is True


def test_a_release_2_75x_slower_on_a_noisy_board_fails_after_benching_again(tmp_path):
    # the review's case: previous runs of 10 and 30 ms widened the limit to 5x, so 27.5 ms (2.75x their mean) passed
    release(tmp_path, "A", "10 30 10 30 10 30")
    release(tmp_path, "B", "27.5 27.5 27.5")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 1
    assert verdict["reasons"] == ["digits-jetson-fp16: p50 27.5 ms is 2.75x the previous release's fastest 10 ms (limit 1.50x, not widened: "
                                  "run-to-run noise 200% above edgeship_health_noise_max 50% in each of 3 rounds of benches)"]
    assert len((tmp_path / "releases" / "A" / "calls.log").read_text().splitlines()) == 6


def test_a_board_that_quietens_is_judged_by_its_quiet_round(tmp_path):
    release(tmp_path, "A", "10 30 10 10.2")
    release(tmp_path, "B", "27.5 10.5")
    activate(tmp_path, "B")
    code, verdict, _ = gate(tmp_path, "B", "A")
    assert code == 0, verdict
    latency = verdict["models"][0]["latency"]
    assert latency["rounds"] == 2 and latency["previous_p50_ms"] == [10.0, 10.2] and latency["p50_ms"] == 10.5 and not latency["noisy"]


def gone(pid: int) -> bool:
    """Dead, or a zombie nobody reaped yet (in a container, PID 1 may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


GRANDCHILD = """import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
time.sleep(300)
"""


def wait_for_pids(path: Path) -> list[int]:
    for _ in range(200):
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(pid) for pid in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_a_run_past_its_bound_is_stopped_with_everything_it_started(tmp_path):
    pids = tmp_path / "pids"
    started = time.monotonic()
    code, report, why = health_gate.run_json([sys.executable, "-c", GRANDCHILD, str(pids)], 1.5, "the bench of A")
    assert (code, report, why) == (124, None, "the bench of A took longer than 1.5 s and was stopped")
    assert time.monotonic() - started < 20
    child, grandchild = wait_for_pids(pids)
    for _ in range(50):
        if gone(child) and gone(grandchild):
            break
        time.sleep(0.1)
    assert gone(child) and gone(grandchild), "the bench's own child outlived the timeout"


def test_the_gate_stopped_by_term_stops_the_run_it_started(tmp_path):
    # what main.yml's `timeout` does: TERM to the gate (and its process group, which the runs have left)
    release(tmp_path, "A", "1.0")
    folder = release(tmp_path, "B", "1.0")
    activate(tmp_path, "B")
    pids = tmp_path / "pids"
    (folder / "venv" / "bin" / "edgeship-runtime").write_text(f"#!{sys.executable}\n" + GRANDCHILD.replace("sys.argv[1]", repr(str(pids))))
    gate_process = subprocess.Popen([sys.executable, str(GATE), "--root", str(tmp_path), "--release", "B", "--previous", "A"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child, grandchild = wait_for_pids(pids)
    gate_process.terminate()
    _, stderr = gate_process.communicate(timeout=30)
    assert gate_process.returncode == 128 + signal.SIGTERM
    assert stderr.strip() == f"health_gate: error: stopped by signal {int(signal.SIGTERM)} (the gate took longer than its bound)"
    for _ in range(50):
        if gone(child) and gone(grandchild):
            break
        time.sleep(0.1)
    assert gone(child) and gone(grandchild), "the check the gate ran outlived the gate"
