"""Clocks held for a benchmark on the systemd board (issue 29 item 3): bench.yml with
edgeship_bench_lock_clocks holds the governor through its one root step, the unprivileged
benchmark finds it held and records it, and the governor is back afterwards, also when the
benchmark fails. The board's clocks are the simulator's stand-in tree (this VM has no cpufreq),
root's alone as a board's sysfs is.

After test_fleet.py in file order: its deploy made the release this bench runs (deployed here
when the file runs alone)."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.fleet import host

pytestmark = pytest.mark.fleet
HOST = host("rpi")
SYSFS = "/etc/edgeship/simulated-sysfs"
CLI = "/home/edge/edgeship/current/venv/bin/edgeship-runtime"


def governors(fleet) -> list[str]:
    shown = fleet.board(HOST, "sh", "-c", f"cat {SYSFS}/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()


def new_run(fleet, before: set) -> dict:
    runs = [path for path in set(fleet.results.iterdir()) - before if path.is_dir()]
    assert len(runs) == 1, runs
    return json.loads((runs[0] / f"{HOST}.json").read_text())


def test_lock_clocks_holds_the_governor_during_the_benchmark_and_puts_it_back(fleet):
    if fleet.current(HOST) is None:
        assert fleet.playbook("deploy.yml", limit=HOST).returncode == 0
    assert set(governors(fleet)) == {"schedutil"}
    started = time.monotonic()
    release = json.loads(fleet.board(HOST, "cat", "/home/edge/edgeship/current/release.json").stdout)
    entry = release["bench"][0]
    artifact = f"/home/edge/edgeship/current/artifacts/{entry['artifact'] or entry['cpu_artifact']}"
    # the board's user cannot hold the clocks itself: one line naming the root step
    direct = fleet.board(HOST, "sh", "-c", f". /etc/environment; export EDGESHIP_CLOCKS_SYSFS; {CLI} bench {artifact} --lock-clocks --min-runs 1 "
                                            "--min-s 0 --warmup-s 0 --allow-cpu-fallback")
    assert direct.returncode == 2 and direct.stderr.count("\n") == 1, direct.stderr
    assert "Permission denied" in direct.stderr and "edgeship_runtime.clocks lock" in direct.stderr

    fleet.results.mkdir(parents=True, exist_ok=True)
    before = set(fleet.results.iterdir())
    result = fleet.playbook("bench.yml", limit=HOST, edgeship_bench_lock_clocks=True)
    assert result.returncode == 0, result.stdout[-3000:]
    document = new_run(fleet, before)
    for entry in document["results"]:
        clocks = entry["bench"]["clocks"]
        print(f"{HOST} {entry['model']}: held {clocks['held']} by {clocks['held_by']}; before {clocks['before']['cpufreq']}")
        assert clocks["lock_requested"] and clocks["held"] and clocks["held_by"] == "already held"  # by the root step, around it
        for moment in ("before", "after"):
            assert clocks[moment]["sysfs"] == SYSFS
            assert {policy["governor"] for policy in clocks[moment]["cpufreq"].values()} == {"performance"}, moment
        assert clocks["before"]["thermal_c"] == {"cpu-thermal": 45.0}
    assert set(governors(fleet)) == {"schedutil"}  # put back after the benchmarks

    # a benchmark that fails still leaves the clocks as they were: the restore is the block's `always`
    before = set(fleet.results.iterdir())
    failed = fleet.playbook("bench.yml", limit=HOST, edgeship_bench_lock_clocks=True, edgeship_bench_args=["--min-runs", "0"])
    assert failed.returncode != 0
    assert "Ensure the board's clocks are held for the benchmarks" in failed.stdout
    assert "Ensure the board's clocks are back as they were" in failed.stdout
    assert set(governors(fleet)) == {"schedutil"}
    assert fleet.board(HOST, "sudo", "test", "-e", "/run/edgeship/clocks-held.json").returncode == 1  # nothing left held
    print(f"clocks on {HOST}: {time.monotonic() - started:.0f} s for the direct refusal and two bench.yml runs")
