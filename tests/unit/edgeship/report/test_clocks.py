"""The clocks a board recorded (bench JSON `clocks`) in the report's rows, and `invoke compare`
refusing to call a latency move a regression across different clock states."""

from __future__ import annotations

import json

import pytest

from edgeship.report import store
from edgeship.report.clocks import clock_labels, clock_state, clocks_differ
from edgeship.report.regressions import compare_runs
from edgeship_runtime import clocks
from tests.unit.edgeship.report.runs import make_run
from tests.unit.runtime.test_clocks import rk3588_tree

BASE, NEW = "20261130T100000Z", "20261201T100000Z"
ROW = "rock5b mobilenetv2 rk3588 int8"


@pytest.fixture(scope="module")
def records(tmp_path_factory, monkeypatch_module) -> dict[str, dict]:
    """Clock records as the board runtime writes them, on a captured RK3588 tree: held and not."""
    root = rk3588_tree(tmp_path_factory.mktemp("sys") / "sys")
    monkeypatch_module.setenv("EDGESHIP_CLOCKS_SYSFS", str(root))
    found = {}
    for name, lock in (("held", True), ("floating", False)):
        with clocks.held(lock) as record:
            pass
        found[name] = json.loads(json.dumps(record))
    return found


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def with_clocks(results, run_id: str, record: dict) -> None:
    path = results / run_id / "rock5b.json"
    board = json.loads(path.read_text())
    for result in board["results"]:
        result["bench"]["clocks"] = record
    path.write_text(json.dumps(board))


def compared(tmp_path, base_clocks: dict, new_clocks: dict, slower: float) -> tuple[int, dict]:
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", BASE, seed=0)
    make_run(results, tmp_path / "artifacts", NEW, seed=7, slower={("rock5b", "mobilenetv2"): slower})
    with_clocks(results, BASE, base_clocks)
    with_clocks(results, NEW, new_clocks)
    code = compare_runs(results, BASE, NEW)
    return code, json.loads((results / NEW / f"compare-{BASE}.json").read_text())


def test_a_slower_run_with_other_clocks_is_no_regression_and_the_finding_names_both(tmp_path, records):
    code, report = compared(tmp_path, records["held"], records["floating"], slower=1.3)
    assert code == 0 and report["regressions"] == []
    finding = next(item for item in report["other"] if item["key"] == ROW)
    assert finding["kind"] == "clocks differ"
    assert finding["why"] == ("latency not judged: the base run had clocks held (dmc userspace, fdab0000.npu performance, performance), "
                              "this one clocks not held (dmc dmc_ondemand, fdab0000.npu rknpu_ondemand, schedutil); "
                              "hold the clocks in both (edgeship_bench_lock_clocks) or in neither")


def test_the_same_slower_run_with_the_same_clocks_is_caught(tmp_path, records):
    code, report = compared(tmp_path, records["held"], records["held"], slower=1.3)
    assert code == 1 and [(item["kind"], item["key"]) for item in report["regressions"]] == [("slower", ROW)]


def test_the_report_row_shows_the_clocks(tmp_path, records):
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", NEW)
    with_clocks(results, NEW, records["held"])
    store.import_run(results, results / NEW)
    row = next(row for row in store.comparison_rows(results, NEW) if row["board"] == "rock5b")
    assert ("clocks held (dmc userspace, fdab0000.npu performance, performance), 1008 MHz, 46 -> 46 °C, read from "
            f"{records['held']['before']['sysfs']}") in row["labels"]
    rpi = next(row for row in store.comparison_rows(results, NEW) if row["board"] == "sim-rpi")
    assert not any(label.startswith("clocks") for label in rpi["labels"])  # nothing recorded: nothing claimed


def test_states_of_records_that_lack_clocks(records):
    assert clock_state(None) == "clocks not recorded" and clock_labels("not json") == []
    assert clocks_differ(None, {"steady": {}}) is None  # neither recorded: the old rule judges them
    assert clocks_differ(None, {"clocks": records["held"]}) == ("clocks not recorded", clock_state({"clocks": records["held"]}))
    no_cpufreq = {"clocks": {**records["floating"], "before": {"cpufreq": {}, "devfreq": {}, "thermal_c": {}}}}
    assert clock_state(no_cpufreq) == "clocks not held (no cpufreq)" and clock_labels(no_cpufreq) == []


def spoiled(records, **before) -> dict:
    return {"clocks": {**records["held"], "before": {**records["held"]["before"], **before}}}


@pytest.mark.parametrize("before", [{"cpufreq": ["performance"]}, {"thermal_c": [45.0]}, {"devfreq": "dmc"},
                                    {"cpufreq": {"cpu0": {"governor": ["x"], "cur_mhz": True}}}, {"thermal_c": {"soc": float("nan")}}],
                         ids=["cpufreq a list", "thermal_c a list", "devfreq text", "governor a list, MHz a bool", "temperature NaN"])
def test_a_board_record_of_the_wrong_shape_neither_crashes_the_label_nor_compare(records, before):
    record = spoiled(records, **before)
    labels = clock_labels(record)
    assert all("nan" not in label and "True" not in label and "[" not in label for label in labels)
    assert clocks_differ(record, {"clocks": records["held"]}) in (None, (clock_state(record), clock_state({"clocks": records["held"]})))
    assert clocks_differ({"clocks": records["held"]}, record) in (None, (clock_state({"clocks": records["held"]}), clock_state(record)))


def test_a_long_governor_or_sysfs_reaches_the_label_bounded_and_on_one_line(records):
    record = spoiled(records, cpufreq={"cpu0": {"governor": "perf\n" + "x" * 5000, "cur_mhz": 1008.0}}, sysfs="/s\n" + "y" * 5000)
    label = clock_labels(record)[0]
    assert "\n" not in label and len(label) < 400 and "perf xxx" in label and "read from /s yyy" in label


def test_held_is_only_true(records):
    assert clock_state({"clocks": {**records["held"], "held": "no"}}).startswith("clocks not held")
