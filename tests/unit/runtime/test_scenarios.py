"""`bench --scenario`: what each MLPerf scenario reports, the scaled-down duration rule stated in
the JSON, and a real bench of a tiny ONNX artifact through the command line."""

from __future__ import annotations

import json
import time

import pytest

from edgeship_runtime import scenarios
from tests.support.artifacts import tiny_artifact
from tests.support.badinput import runtime_cli


def test_single_stream_reports_the_early_stopping_p90_and_the_query_count():
    times = [k / 1000.0 for k in range(100, 0, -1)]  # 1..100 ms
    result = scenarios.latency_summary("single-stream", times, elapsed_s=3.0, min_s=2.0)
    assert result["mlperf_scenario"] == "SingleStream" and result["queries"] == 100
    assert result["p90_ms"] == pytest.approx(98.0)  # early stopping: the 3rd largest of 100, not the plain 91
    assert result["early_stopping"]["met"] is True and result["early_stopping"]["plain_ms"] == pytest.approx(91.0)
    assert result["duration"] == {**result["duration"], "met": True, "minimum_s": 2.0, "mlperf_minimum_s": 600.0}
    assert "scaled down" in result["duration"]["rule"]


def test_too_short_a_run_says_so():
    result = scenarios.latency_summary("single-stream", [0.001] * 10, elapsed_s=0.5, min_s=2.0)
    assert result["p90_ms"] is None and result["early_stopping"]["met"] is False
    assert result["early_stopping"]["minimum_queries"] == 64 and result["duration"]["met"] is False


def test_single_stream_runs_at_least_the_queries_early_stopping_needs():
    calls = []
    result = scenarios.run("single-stream", lambda: calls.append(1), min_runs=1, min_s=0.0)
    assert result["queries"] == len(calls) == 64 and result["early_stopping"]["met"]


def test_multi_stream_queries_are_eight_samples():
    calls = []
    result = scenarios.run("multi-stream", lambda: calls.append(1), min_runs=1, min_s=0.0)
    assert result["samples_per_query"] == 8 and result["queries"] == 662 and len(calls) == 8 * 662
    assert result["p99_ms"] is not None and result["early_stopping"]["percentile"] == 0.99


def test_a_time_box_cuts_multi_stream_short_and_says_so():
    result = scenarios.run("multi-stream", lambda: time.sleep(0.001), min_runs=1, min_s=0.0, max_s=0.05)
    assert 1 <= result["queries"] < 662
    assert result["p99_ms"] is None and result["early_stopping"]["met"] is False


def test_offline_reports_samples_per_second_over_wall_time():
    result = scenarios.run("offline", lambda: time.sleep(0.002), min_runs=50, min_s=0.0)
    assert result["samples"] == 50
    # 2 ms a sample: at most 500/s, and the wall time (not the mean) decides it
    assert 100 < result["samples_per_s"] <= 500
    assert result["samples_per_s"] == pytest.approx(50 / result["duration"]["measured_s"])


def test_an_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="is not one of single-stream, multi-stream, offline"):
        scenarios.run("server", lambda: None, min_runs=1, min_s=0.0)


def test_bench_json_holds_the_single_stream_p90_and_its_query_count(tmp_path):
    artifact = tiny_artifact(tmp_path / "artifact")
    result = runtime_cli("bench", str(artifact), "--scenario", "single-stream", "--min-s", "0.2", "--warmup-s", "0")
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    scenario = bench["scenario"]
    assert bench["options"]["scenario"] == "single-stream" and scenario["mlperf_scenario"] == "SingleStream"
    assert scenario["queries"] == bench["steady"]["runs"] >= 64
    assert scenario["early_stopping"]["met"] and scenario["p90_ms"] >= scenario["early_stopping"]["plain_ms"] > 0
    assert scenario["duration"]["minimum_s"] == 0.2 and scenario["duration"]["mlperf_minimum_s"] == 600.0


@pytest.mark.parametrize("name", ["multi-stream", "offline"])
def test_bench_runs_the_other_scenarios(tmp_path, name):
    artifact = tiny_artifact(tmp_path / "artifact")
    result = runtime_cli("bench", str(artifact), "--scenario", name, "--min-s", "0.1", "--warmup-s", "0")
    assert result.returncode == 0, result.stderr
    scenario = json.loads(result.stdout)["scenario"]
    assert scenario["scenario"] == name
    assert (scenario["p99_ms"] > 0) if name == "multi-stream" else (scenario["samples_per_s"] > 0)


def test_no_scenario_leaves_the_bench_as_it_was(tmp_path):
    artifact = tiny_artifact(tmp_path / "artifact")
    result = runtime_cli("bench", str(artifact), "--min-s", "0.1", "--warmup-s", "0", "--min-runs", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scenario"] is None
