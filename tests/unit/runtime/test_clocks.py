"""Clocks read, held and put back on captured sysfs trees (an RK3588's cpufreq policies, NPU and
DDR devfreq, thermal zones): this VM has no cpufreq at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgeship_runtime import clocks
from edgeship_runtime.errors import ArtifactError
from tests.support.artifacts import tiny_artifact
from tests.support.badinput import assert_one_clean_line, run_bounded, runtime_cli

PREFIX = "edgeship-runtime: error: "


def write(root: Path, relative: str, content: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content + "\n")


def rk3588_tree(root: Path) -> Path:
    """/sys of an RK3588 as its BSP kernel lays it out: three clusters whose cpuN/cpufreq link to
    their policy, the NPU's devfreq with `performance`, the DDR's (dmc) with `userspace` only."""
    cpu = root / "devices/system/cpu"
    for policy, first, top in ((0, 0, 1800000), (4, 4, 2352000), (6, 6, 2352000)):
        folder = f"devices/system/cpu/cpufreq/policy{policy}"
        for name, value in (("scaling_governor", "schedutil"), ("scaling_available_governors", "conservative ondemand userspace "
                            "powersave performance schedutil"), ("scaling_cur_freq", "1008000"), ("scaling_min_freq", "408000"),
                            ("scaling_max_freq", str(top)), ("cpuinfo_max_freq", str(top))):
            write(root, f"{folder}/{name}", value)
        for core in range(first, first + (4 if policy == 0 else 2)):
            (cpu / f"cpu{core}").mkdir(parents=True)
            (cpu / f"cpu{core}/cpufreq").symlink_to(f"../cpufreq/policy{policy}")
    for name, governor, offered in (("fdab0000.npu", "rknpu_ondemand", "rknpu_ondemand userspace powersave performance simple_ondemand"),
                                    ("dmc", "dmc_ondemand", "dmc_ondemand userspace powersave simple_ondemand")):
        for attribute, value in (("governor", governor), ("available_governors", offered), ("cur_freq", "300000000"),
                                 ("max_freq", "1000000000"), ("available_frequencies", "300000000 600000000 1000000000"),
                                 ("userspace/set_freq", "<unsupported>")):
            write(root, f"class/devfreq/{name}/{attribute}", value)
    for zone, kind, millidegrees in ((0, "soc-thermal", 45250), (1, "bigcore0-thermal", 46200), (6, "npu-thermal", 44400)):
        write(root, f"class/thermal/thermal_zone{zone}/type", kind)
        write(root, f"class/thermal/thermal_zone{zone}/temp", str(millidegrees))
    return root


@pytest.fixture
def board(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGESHIP_CLOCKS_SYSFS", str(tmp_path / "sys"))
    return rk3588_tree(tmp_path / "sys")


def governors(root: Path) -> dict[str, str]:
    found = {f"policy{n}": (root / f"devices/system/cpu/cpufreq/policy{n}/scaling_governor").read_text().strip() for n in (0, 4, 6)}
    found.update({name: (root / f"class/devfreq/{name}/governor").read_text().strip() for name in ("fdab0000.npu", "dmc")})
    return found


ORIGINAL = {"policy0": "schedutil", "policy4": "schedutil", "policy6": "schedutil", "fdab0000.npu": "rknpu_ondemand", "dmc": "dmc_ondemand"}
HELD = {"policy0": "performance", "policy4": "performance", "policy6": "performance", "fdab0000.npu": "performance", "dmc": "userspace"}


def test_state_reads_each_policy_once_the_npu_and_ddr_and_every_thermal_zone(board):
    found = clocks.state()
    assert found["sysfs"] == str(board)
    assert list(found["cpufreq"]) == ["cpu0", "cpu4", "cpu6"]  # a cluster shares a policy: read once
    assert found["cpufreq"]["cpu4"] == {"governor": "schedutil", "cur_mhz": 1008.0, "min_mhz": 408.0, "max_mhz": 2352.0, "hw_max_mhz": 2352.0}
    assert found["devfreq"]["fdab0000.npu"] == {"governor": "rknpu_ondemand", "cur_mhz": 300.0, "max_mhz": 1000.0}
    assert found["thermal_c"] == {"soc-thermal": 45.25, "bigcore0-thermal": 46.2, "npu-thermal": 44.4}
    assert not clocks.is_held(found) and found["jetson_clocks"] is False


def test_lock_holds_cpu_npu_and_ddr_and_restore_puts_back_what_it_changed(board):
    saved = clocks.lock()
    assert governors(board) == HELD
    # the DDR offers no `performance`: `userspace` at its top frequency, as rknn_benchmark's scripts set it
    assert (board / "class/devfreq/dmc/userspace/set_freq").read_text().strip() == "1000000000"
    assert clocks.is_held(clocks.state())
    clocks.restore(saved)
    assert governors(board) == ORIGINAL


def test_held_records_before_after_and_restored_and_a_second_lock_finds_them_held(board):
    with clocks.held(True) as record:
        assert governors(board) == HELD
        with clocks.held(True) as inner:  # an unprivileged bench inside bench.yml's root hold: nothing to write
            pass
    assert inner["held_by"] == "already held" and inner["restored"] is None and governors(board) == ORIGINAL
    assert record["held_by"] == "this run" and record["held"] is True
    assert {policy["governor"] for policy in record["before"]["cpufreq"].values()} == {"performance"}
    assert {policy["governor"] for policy in record["after"]["cpufreq"].values()} == {"performance"}
    assert {policy["governor"] for policy in record["restored"]["cpufreq"].values()} == {"schedutil"}
    assert record["initial"]["devfreq"]["dmc"]["governor"] == "dmc_ondemand"
    assert record["changed"]["governors"] == {"cpu0": "schedutil", "cpu4": "schedutil", "cpu6": "schedutil",
                                              "fdab0000.npu": "rknpu_ondemand", "dmc": "dmc_ondemand"}


def test_without_lock_the_state_is_recorded_and_nothing_written(board):
    with clocks.held(False) as record:
        pass
    assert record["held"] is False and record["held_by"] is None and record["before"]["cpufreq"]["cpu0"]["governor"] == "schedutil"
    assert governors(board) == ORIGINAL


def test_a_failing_benchmark_still_puts_the_clocks_back(board):
    with pytest.raises(RuntimeError, match="the model failed"), clocks.held(True):
        raise RuntimeError("the model failed")
    assert governors(board) == ORIGINAL


def test_sigterm_during_the_benchmark_puts_the_clocks_back(board):
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), clocks.held(True):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler raises here
    assert governors(board) == ORIGINAL
    assert signal.getsignal(signal.SIGTERM) is handler


def test_a_board_without_cpufreq_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CLOCKS_SYSFS", str(tmp_path))
    with pytest.raises(ArtifactError, match=r"no cpufreq policy under .*run without --lock-clocks"):
        clocks.lock()


def test_a_policy_without_performance_is_refused_and_nothing_is_left_changed(board):
    write(board, "devices/system/cpu/cpufreq/policy6/scaling_available_governors", "ondemand schedutil")
    with pytest.raises(ArtifactError, match=r"cpu6 offers no 'performance' governor"):
        clocks.lock()
    assert governors(board) == ORIGINAL  # cpu0 and cpu4 were set, then put back


def test_a_saved_state_cannot_point_a_root_write_elsewhere(board):
    with pytest.raises(ArtifactError, match=r"cpufreq '\.\./\.\./etc' to 'x'.*cpufreq 'cpu0' to 'evil; rm'"):
        clocks.restore({"cpufreq": {"../../etc": "x", "cpu0": "evil; rm"}})
    assert governors(board) == ORIGINAL


def test_the_root_step_keeps_the_first_state_until_restore(board, tmp_path):
    state = tmp_path / "run/edgeship/clocks-held.json"
    assert clocks.main(["lock", "--state", str(state), "--sysfs", str(board)]) == 0
    assert governors(board) == HELD and oct(state.stat().st_mode & 0o777) == "0o600"
    assert clocks.main(["lock", "--state", str(state), "--sysfs", str(board)]) == 0  # a second lock (a run that never restored) keeps the first state
    assert json.loads(state.read_text())["cpufreq"]["cpu0"] == "schedutil"
    assert clocks.main(["restore", "--state", str(state), "--sysfs", str(board)]) == 0
    assert governors(board) == ORIGINAL and not state.exists()
    assert clocks.main(["restore", "--state", str(state), "--sysfs", str(board)]) == 0  # nothing held: nothing to do


def test_a_second_lock_holds_again_what_is_not_held_and_keeps_the_first_state(board, tmp_path):
    state = tmp_path / "run/held.json"
    assert clocks.main(["lock", "--state", str(state), "--sysfs", str(board)]) == 0
    write(board, "devices/system/cpu/cpufreq/policy4/scaling_governor", "powersave")  # someone let a cluster go
    assert clocks.main(["lock", "--state", str(state), "--sysfs", str(board)]) == 0
    assert governors(board) == HELD  # held again, not just reported held
    assert json.loads(state.read_text())["cpufreq"]["cpu4"] == "schedutil" and oct(state.stat().st_mode & 0o777) == "0o600"
    assert clocks.main(["restore", "--state", str(state), "--sysfs", str(board)]) == 0
    assert governors(board) == ORIGINAL


def test_the_root_step_takes_its_tree_from_sysfs_never_from_the_environment(board, tmp_path, capsys):
    """EDGESHIP_CLOCKS_SYSFS is the board user's (a ~/.bashrc sets it): the root step reads /sys,
    which on this VM has no cpufreq, and leaves the user's tree alone."""
    assert clocks.main(["lock", "--state", str(tmp_path / "run/held.json")]) == 2
    assert "no cpufreq policy under /sys/" in capsys.readouterr().err and governors(board) == ORIGINAL


@pytest.mark.skipif(os.geteuid() != 0, reason="the owner check is root's")
@pytest.mark.parametrize("spoil", ["other-writable", "the user's"])
def test_as_root_a_tree_the_user_may_change_is_refused(board, tmp_path, capsys, spoil):
    if spoil == "other-writable":
        board.chmod(0o777)
    else:
        os.chown(board / "devices/system/cpu/cpufreq/policy4", 65534, 65534)
    assert clocks.main(["lock", "--state", str(tmp_path / "run/held.json"), "--sysfs", str(board)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not root's alone" in err[0] and governors(board) == ORIGINAL


def test_a_folder_link_leaving_the_tree_is_never_followed(board, tmp_path):
    """cpuN/cpufreq links to its policy inside the tree; one that leads outside is refused, and
    the file it leads to is not written."""
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(board / "devices/system/cpu/cpufreq/policy6", elsewhere)
    link = board / "devices/system/cpu/cpu7/cpufreq"
    link.unlink()
    link.symlink_to(elsewhere)
    with pytest.raises(ArtifactError, match=r"cpu7/cpufreq leads to .*elsewhere, outside the clocks tree"):
        clocks.lock()
    with pytest.raises(ArtifactError, match=r"outside the clocks tree"):
        clocks.state()
    assert (elsewhere / "scaling_governor").read_text() == "schedutil\n" and governors(board) == ORIGINAL


def test_a_fifo_in_the_tree_is_not_waited_on(board):
    fifo = board / "class/thermal/thermal_zone0/temp"
    fifo.unlink()
    os.mkfifo(fifo)
    result = run_bounded([sys.executable, "-m", "edgeship_runtime.clocks", "show", "--sysfs", str(board)], bound_s=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["thermal_c"] == {"bigcore0-thermal": 46.2, "npu-thermal": 44.4}


def test_names_that_are_not_numbered_cores_or_zones_are_skipped(board):
    write(board, "devices/system/cpu/cpu1x/cpufreq/scaling_governor", "schedutil")
    write(board, "class/thermal/thermal_zone1x/temp", "99000")
    found = clocks.state()
    assert list(found["cpufreq"]) == ["cpu0", "cpu4", "cpu6"] and "99" not in json.dumps(found["thermal_c"])


def test_the_clocks_go_back_when_the_state_after_the_benchmark_cannot_be_read(board, tmp_path):
    with pytest.raises(ArtifactError, match="outside the clocks tree"), clocks.held(True):
        (tmp_path / "zone").mkdir()
        (board / "class/thermal/thermal_zone9").symlink_to(tmp_path / "zone")
    assert governors(board) == ORIGINAL


def test_the_root_step_refuses_a_damaged_state_file_in_one_line(board, tmp_path, capsys):
    state = tmp_path / "held.json"
    state.write_text("[1, 2")
    state.chmod(0o600)
    assert clocks.main(["restore", "--state", str(state), "--sysfs", str(board)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PREFIX) and "saved clock state" in err[0] and "set the governors by hand" in err[0]


def test_an_unprivileged_lock_is_one_line_naming_the_root_step():
    """The stand-in tree is root's, as a board's sysfs is: the benchmark's user cannot write it."""
    with tempfile.TemporaryDirectory(prefix="edgeship-clocks-test-") as folder:
        os.chmod(folder, 0o755)
        root = rk3588_tree(Path(folder) / "sys")
        for path in root.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        # the runtime's top-level modules (stdlib only, all the root step needs), where any user may read them
        package = Path(folder) / "runtime/edgeship_runtime"
        package.mkdir(parents=True)
        for module in Path(clocks.__file__).parent.glob("*.py"):
            shutil.copy(module, package / module.name)
        os.chmod(package.parent, 0o755)
        (Path(folder) / "state").mkdir(mode=0o700)
        if os.geteuid() == 0:
            os.chown(Path(folder) / "state", 65534, 65534)  # the user's own state folder: it fails writing the clocks, not there
        runtime = package.parent
        # as root, the benchmark's user is `nobody`, with the system Python (root's own may be out of its reach)
        python = sys.executable if os.geteuid() else shutil.which("python3", path="/usr/bin:/bin")
        if python is None:
            pytest.skip("no system python3 that an unprivileged user may run")
        result = subprocess.run([python, "-c", "import sys; from edgeship_runtime.clocks import main; sys.exit(main(['lock', "
                                 "'--state', sys.argv[1], '--sysfs', sys.argv[2]]))", str(Path(folder) / "state/held.json"), str(root)],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "EDGESHIP_CLOCKS_SYSFS": str(root), "PYTHONPATH": str(runtime)},
                                user=65534 if os.geteuid() == 0 else None, cwd="/")
        assert_one_clean_line(result, PREFIX, r"cannot write 'performance' to .*policy0/scaling_governor \(Permission denied\); "
                                              r"holding clocks needs root: run `sudo .* -m edgeship_runtime.clocks lock")
        assert governors(root) == ORIGINAL


def test_bench_lock_clocks_records_the_clocks_in_the_bench_json(board, tmp_path):
    artifact = tiny_artifact(tmp_path / "artifact")
    result = runtime_cli("bench", str(artifact), "--lock-clocks", "--min-runs", "3", "--min-s", "0", "--warmup-s", "0",
                         env={"EDGESHIP_CLOCKS_SYSFS": str(board)})
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)["clocks"]
    assert record["lock_requested"] and record["held"] and record["held_by"] == "this run"
    assert record["before"]["devfreq"]["fdab0000.npu"]["governor"] == "performance"
    assert record["restored"]["cpufreq"]["cpu0"]["governor"] == "schedutil" and record["after"]["thermal_c"]["soc-thermal"] == 45.25
    assert governors(board) == ORIGINAL


def test_bench_lock_clocks_on_a_board_without_cpufreq_is_one_line(tmp_path):
    artifact = tiny_artifact(tmp_path / "artifact")
    result = runtime_cli("bench", str(artifact), "--lock-clocks", "--min-runs", "1", "--min-s", "0",
                         env={"EDGESHIP_CLOCKS_SYSFS": str(tmp_path / "empty")})
    assert_one_clean_line(result, PREFIX, r"--lock-clocks: no cpufreq policy under")


JETSON_CLOCKS = """#!/bin/sh
echo "jetson_clocks $*" >> {log}
case "$1" in
  --store)
    # L4T's own: an existing file is not overwritten without a Y on stdin
    if [ -e "$2" ]; then echo "File $2 already exists. Can I overwrite it? Y/N"; read answer; exit 1; fi
    echo "saved by jetson_clocks" > "$2" ;;
esac
exit {code}
"""


def jetson(tmp_path, monkeypatch, code: int = 0) -> tuple[Path, Path]:
    """A board's root (sysroot) with its clocks tree and a jetson_clocks that notes how it was called."""
    monkeypatch.delenv("EDGESHIP_CLOCKS_SYSFS", raising=False)
    rk3588_tree(tmp_path / "board/sys")
    tool = tmp_path / "board/usr/bin/jetson_clocks"
    tool.parent.mkdir(parents=True)
    tool.write_text(JETSON_CLOCKS.format(log=tmp_path / "calls.log", code=code))
    tool.chmod(0o755)
    return tmp_path / "board", tmp_path / "calls.log"


@pytest.mark.skipif(os.geteuid() != 0, reason="jetson_clocks runs only as root")
def test_jetson_clocks_is_stored_run_and_restored(tmp_path, monkeypatch):
    sysroot, log = jetson(tmp_path, monkeypatch)
    with clocks.held(True, str(sysroot)) as record:
        assert governors(sysroot / "sys") == HELD
    calls = log.read_text().splitlines()
    assert [call.split()[:2] for call in calls] == [["jetson_clocks", "--store"], ["jetson_clocks"], ["jetson_clocks", "--restore"]]
    assert calls[0].split()[2] == calls[2].split()[2]  # restored from the very file it stored
    assert record["changed"]["jetson_clocks"] is True and record["before"]["jetson_clocks"] is True
    assert governors(sysroot / "sys") == ORIGINAL and not os.path.exists(calls[0].split()[2])  # its scratch folder is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="jetson_clocks runs only as root")
def test_jetson_clocks_can_be_locked_again_after_a_restore(tmp_path, monkeypatch):
    sysroot, log = jetson(tmp_path, monkeypatch)
    state = tmp_path / "run/held.json"
    for _ in range(2):
        clocks._lock_to_file(str(state), str(sysroot))
        assert governors(sysroot / "sys") == HELD
        clocks._restore_from_file(str(state), str(sysroot))
        assert governors(sysroot / "sys") == ORIGINAL and not os.path.exists(str(state) + ".jetson_clocks.conf")
    assert [call.split()[:2] for call in log.read_text().splitlines()].count(["jetson_clocks", "--store"]) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="jetson_clocks runs only as root")
def test_a_failing_jetson_clocks_is_one_line_and_the_governors_go_back(tmp_path, monkeypatch):
    sysroot, _ = jetson(tmp_path, monkeypatch, code=1)
    with pytest.raises(ArtifactError, match=r"`.*jetson_clocks --store .*` failed \(exit 1"), clocks.held(True, str(sysroot)):
        pass
    assert governors(sysroot / "sys") == ORIGINAL
