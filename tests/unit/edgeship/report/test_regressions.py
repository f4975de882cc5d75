"""`invoke compare`: a planted slower artifact, an accuracy drop and a bigger artifact are caught; an
unchanged re-run (other noise) passes; the latency rule ignores moves inside the runs' spread."""

from __future__ import annotations

import json

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship.report.regressions import MIN_NOISE_ROWS, band, compare_runs, fleet_noise, latency_change, parse_thresholds
from tests.unit.edgeship.report.runs import make_run, stats

BASE, NEW = "20261130T100000Z", "20261201T100000Z"


def two_runs(tmp_path, **planted):
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", BASE, seed=0)
    make_run(results, tmp_path / "artifacts", NEW, seed=7, **planted)  # other noise: a re-run is never identical
    return results


def findings(results, base=BASE, new=NEW) -> dict:
    return json.loads((results / new / f"compare-{base}.json").read_text())


def test_an_unchanged_rerun_passes(tmp_path, capsys):
    results = two_runs(tmp_path)
    assert compare_runs(results, BASE, NEW) == 0
    report = findings(results)
    assert report["regressions"] == [] and report["base"] == BASE and report["new"] == NEW
    assert "0 regression(s)" in capsys.readouterr().out


def test_a_slower_artifact_is_caught(tmp_path, capsys):
    results = two_runs(tmp_path, slower={("sim-rpi", "mobilenetv2"): 1.3, ("controller", "digits"): 1.5})
    assert compare_runs(results, BASE, NEW) == 1
    slower = {item["key"] for item in findings(results)["regressions"] if item["kind"] == "slower"}
    assert slower == {"sim-rpi mobilenetv2 tflite fp32",
                      "controller digits tflite fp32", "controller digits tflite int8", "controller digits onnx fp32"}
    assert all(item["kind"] == "slower" for item in findings(results)["regressions"])
    assert "sim-rpi mobilenetv2 tflite fp32" in capsys.readouterr().out
    assert (results / NEW / f"compare-{BASE}.md").read_text().startswith(f"# edgeship run {NEW} against {BASE}")


def test_an_accuracy_drop_is_caught(tmp_path):
    results = two_runs(tmp_path, accuracy_drop={("digits", "tflite", "int8"): 2.0})
    assert compare_runs(results, BASE, NEW) == 1
    regressions = findings(results)["regressions"]
    assert {(item["kind"], item["key"]) for item in regressions} == {("less accurate", "digits tflite int8")}
    assert len(regressions) == 2  # the task metric against fp32 and the accuracy against labels
    assert regressions[0]["why"] == "-2.00 points (threshold -1)"


def test_a_drop_within_the_threshold_passes_and_the_threshold_is_configurable(tmp_path):
    results = two_runs(tmp_path, accuracy_drop={("digits", "tflite", "int8"): 0.5})
    assert compare_runs(results, BASE, NEW) == 0
    assert compare_runs(results, BASE, NEW, thresholds=["accuracy_points=0.2"]) == 1


def test_a_bigger_artifact_is_caught(tmp_path):
    results = two_runs(tmp_path, bigger={("mobilenetv2", "rk3588", "int8"): 1.1})
    assert compare_runs(results, BASE, NEW) == 1
    assert [(i["kind"], i["key"]) for i in findings(results)["regressions"]] == [("bigger", "mobilenetv2 rk3588 int8")]


def test_a_board_check_that_starts_failing_is_caught(tmp_path):
    results = two_runs(tmp_path)
    board = json.loads((results / NEW / "rock5b.json").read_text())
    board["results"][0]["check"].update(passed=False, failed=["output 'logits': top-1 agreement 0.5 < 0.9"])
    (results / NEW / "rock5b.json").write_text(json.dumps(board))
    assert compare_runs(results, BASE, NEW) == 1
    assert [(i["kind"], i["key"], i["why"]) for i in findings(results)["regressions"]] == [
        ("check failed", "rock5b mobilenetv2", "output 'logits': top-1 agreement 0.5 < 0.9")]


def test_a_board_that_now_falls_back_to_the_cpu_is_caught_under_its_requested_key(tmp_path):
    results = two_runs(tmp_path)
    board = json.loads((results / NEW / "rock5b.json").read_text())
    cpu = json.loads((results / NEW / "sim-rpi.json").read_text())["results"][1]  # mobilenetv2 tflite fp32 on the CPU
    requested = board["results"][0]["bench"]["artifact"]
    fallback = {"cpu_fallback": True, "reason": "librknnrt.so is missing on this board", "requested": requested,
                "used": cpu["bench"]["artifact"]}
    board["results"][0]["bench"] = {**cpu["bench"], "fallback": fallback}
    board["results"][0]["check"] = {**cpu["check"], "fallback": fallback}
    (results / NEW / "rock5b.json").write_text(json.dumps(board))
    assert compare_runs(results, BASE, NEW) == 1
    found = findings(results)
    assert [(i["kind"], i["key"]) for i in found["regressions"]] == [("CPU fallback", "rock5b mobilenetv2 rk3588 int8")]
    assert found["regressions"][0]["now"].startswith("tflite fp32 on ") and "librknnrt.so is missing" in found["regressions"][0]["why"]
    assert not any(i["kind"] == "missing" for i in found["other"])  # the same row, not one gone and one new


# Unchanged artifacts whose means moved between runs by as much as the simulated fleet's did on a
# shared 2-core VM (+14% on one board, -15% on another; bands of about +-5% within each run).
DRIFT = {("sim-rpi", "digits"): 1.14, ("sim-rk3588", "digits"): 0.86, ("controller", "digits"): 1.12, ("sim-rk3588", "mobilenetv2"): 0.88}


def test_a_fleet_that_drifts_between_runs_passes_yet_a_slower_artifact_in_it_is_caught(tmp_path):
    results = two_runs(tmp_path, slower=DRIFT)
    assert compare_runs(results, BASE, NEW) == 0
    report = findings(results)
    assert report["latency_noise"]["benchmarks"] == 9 and 0.1 < report["latency_noise"]["sigma"] < 0.25
    assert {item["kind"] for item in report["improvements"]} <= {"faster"}
    drifted = tmp_path / "drifted"
    drifted_results = two_runs(drifted, slower={**DRIFT, ("sim-rpi", "mobilenetv2"): 2.0})
    assert compare_runs(drifted_results, BASE, NEW) == 1
    regressions = findings(drifted_results)["regressions"]
    assert [(item["kind"], item["key"]) for item in regressions] == [("slower", "sim-rpi mobilenetv2 tflite fp32")]
    assert "beyond 3 sigma of the fleet's run-to-run spread" in regressions[0]["why"]


def test_the_fleet_noise_needs_enough_fresh_measurements():
    pairs = [(stats(10.0, seed=i), stats(10.0 * (1.15 if i % 2 else 0.87), seed=50 + i)) for i in range(8)]
    assert 0.1 < fleet_noise(pairs) < 0.25
    assert fleet_noise(pairs[:MIN_NOISE_ROWS - 1]) is None                       # too few to tell: bands and latency_pct alone
    kept_figures = [(base, dict(base)) for base, _ in pairs]                       # the host's kept figures: one measurement twice
    assert fleet_noise(kept_figures) is None
    assert latency_change(pairs[1][0], pairs[1][1], 5) == "slower"               # the bands alone call +15% slower
    assert latency_change(pairs[1][0], pairs[1][1], 5, fleet_noise(pairs)) is None


def test_the_latency_rule_needs_the_move_outside_both_bands():
    base = stats(10.0, spread=0.02, seed=1)
    assert latency_change(base, stats(11.0, spread=0.02, seed=2), 5) == "slower"
    assert latency_change(base, stats(10.3, spread=0.02, seed=2), 5) is None          # within 5%
    assert latency_change(base, stats(9.0, spread=0.02, seed=2), 5) == "faster"
    noisy = stats(10.0, spread=0.25, seed=1)                                          # a noisy board: +8% is inside its spread
    assert latency_change(noisy, stats(10.8, spread=0.25, seed=2), 5) is None
    low, high = band(base)
    assert low < base["p50_ms"] < high == base["p90_ms"]
    sample = stats(10.0, runs=1, seed=3)                                               # a single-run sample has no band: not judged
    assert latency_change(sample, stats(20.0, runs=1, seed=4), 5) is None


def test_without_base_the_previous_run_is_used_and_the_first_run_passes(tmp_path, capsys):
    results = two_runs(tmp_path, slower={("sim-rpi", "mobilenetv2"): 1.5})
    assert compare_runs(results, None, None) == 1  # NEW = the newest, BASE = the one before it
    assert (results / NEW / f"compare-{BASE}.json").is_file()
    assert compare_runs(results, None, BASE) == 0
    assert "is the first in" in capsys.readouterr().out


def test_a_tag_names_a_baseline_to_compare_with(tmp_path, capsys):
    results = two_runs(tmp_path, slower={("sim-rpi", "digits"): 2.0})
    assert compare_runs(results, BASE, None, tag="baseline") == 0
    assert "tagged 'baseline'" in capsys.readouterr().out
    assert store.resolve_run(results, "baseline") == BASE
    assert compare_runs(results, "baseline", NEW) == 1
    assert [i["key"] for i in findings(results)["regressions"]] == ["sim-rpi digits tflite int8"]


@pytest.mark.parametrize("value, message", [
    ("speed=3", r"--threshold speed=3: unknown threshold 'speed'; use one of latency_pct=5"),
    ("latency_pct=fast", r"--threshold latency_pct=fast: 'fast' is not a number; e.g. --threshold latency_pct=5"),
    ("size_pct=-1", r"--threshold size_pct=-1: a threshold is a finite number, not negative"),
    ("latency_pct=nan", r"--threshold latency_pct=nan: a threshold is a finite number, not negative"),
    ("latency_pct=inf", r"--threshold latency_pct=inf: a threshold is a finite number, not negative"),
])
def test_bad_thresholds_name_the_fix(value, message):
    with pytest.raises(EdgeshipError, match=message):
        parse_thresholds([value])


def test_comparing_a_run_with_itself_is_refused(tmp_path):
    results = two_runs(tmp_path)
    with pytest.raises(EdgeshipError, match=r"BASE and NEW are the same run \(20261201T100000Z\)"):
        compare_runs(results, NEW, NEW)
