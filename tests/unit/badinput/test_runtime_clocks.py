"""`edgeship-runtime bench --lock-clocks` and the clocks' root step on bad clock trees and bad saved
states (family `runtime bench`): each is one clean line and exit 2, the clocks left as they were,
nothing written outside them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.artifacts import tiny_artifact
from tests.support.badinput import assert_one_clean_line, run_bounded, runtime_cli
from tests.unit.runtime.test_clocks import ORIGINAL, governors, rk3588_tree

PREFIX = "edgeship-runtime: error: "


def no_cpufreq(root: Path) -> None:
    for folder in sorted((root / "devices/system/cpu").glob("cpu[0-9]*")):
        (folder / "cpufreq").unlink()


def no_performance(root: Path) -> None:
    (root / "devices/system/cpu/cpufreq/policy4/scaling_available_governors").write_text("ondemand schedutil\n")


def linked_governor(root: Path) -> None:
    # a planted link where the attribute should be: holding the clocks would write through it as root
    target = root.parent / "elsewhere"
    target.write_text("schedutil\n")
    governor = root / "devices/system/cpu/cpufreq/policy6/scaling_governor"
    governor.unlink()
    governor.symlink_to(target)


BENCH = {  # kind -> how the board's clock tree is spoiled, and what the line says
    "--lock-clocks on a board without cpufreq": (no_cpufreq, r"no cpufreq policy under"),
    "--lock-clocks without a performance governor": (no_performance, r"cpu4 offers no 'performance' governor"),
    "--lock-clocks through a planted link": (linked_governor, r"scaling_governor is a symbolic link"),
}
RESTORE = {  # kind -> the saved state the root step is asked to put back
    "saved clock state not JSON": ("{not json", r"saved clock state .* is not whole JSON"),
    "saved clock state a list": ("[]", r"saved clock state .* holds a list"),
    "saved clock state naming a path": ('{"cpufreq": {"../../../etc/passwd": "x"}}', r"cpufreq '\.\./\.\./\.\./etc/passwd' to 'x'"),
    "saved clock state naming no governor offered": ('{"cpufreq": {"cpu0": "turbo"}}', r"cpufreq 'cpu0' to 'turbo' \(no such"),
    # L4T's `jetson_clocks --restore FILE` writes every path:value line of FILE as root
    "saved clock state naming another jetson_clocks file": ('{"jetson_clocks": "/etc/passwd"}',
                                                            r"not what lock writes \(jetson_clocks '/etc/passwd', not '.*jetson_clocks.conf'\)"),
    "saved clock state with keys lock never writes": ('{"cpufreq": {}, "run": "x"}', r"not what lock writes \(keys \['run'\]"),
    "saved clock state governors not text": ('{"devfreq": {"dmc": ["userspace"]}}', r"not what lock writes \(cpufreq and devfreq must map"),
}
STATE_FILE = {  # kind -> how the state file or its folder is spoiled (anyone could have put it there)
    "saved clock state others may change": (lambda state: state.chmod(0o666), r"saved clock state .*held.json is not a file of uid \d+ alone"),
    "saved clock state a link": (lambda state: (state.rename(state.with_name("real.json")), state.symlink_to("real.json")),
                                 r"held.json is not a file of uid \d+ alone .*a link"),
    "saved clock state in a folder others may write": (lambda state: state.parent.chmod(0o777),
                                                       r"the saved clock state's folder .* is not a folder of uid \d+ alone"),
}

KINDS = [("runtime bench", kind) for kind in (*BENCH, *RESTORE, *STATE_FILE)]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    return tiny_artifact(tmp_path_factory.mktemp("clocks") / "artifact")


@pytest.mark.parametrize("kind", list(BENCH))
def test_a_bad_clock_tree_is_one_line_and_changes_nothing(tmp_path, artifact, kind):
    spoil, pattern = BENCH[kind]
    root = rk3588_tree(tmp_path / "sys")
    spoil(root)
    kept = sorted(str(path) for path in tmp_path.rglob("*"))
    result = runtime_cli("bench", str(artifact), "--lock-clocks", "--warmup-runs", "0", "--warmup-s", "0", "--min-runs", "1", "--min-s", "0",
                         env={"EDGESHIP_CLOCKS_SYSFS": str(root)})
    assert_one_clean_line(result, PREFIX, pattern)
    assert result.returncode == 2 and not result.stdout.strip()
    assert sorted(str(path) for path in tmp_path.rglob("*")) == kept
    if spoil is not no_cpufreq:
        assert {key: value for key, value in governors(root).items() if key != "policy6" or spoil is not linked_governor} == \
            {key: value for key, value in ORIGINAL.items() if key != "policy6" or spoil is not linked_governor}
    if spoil is linked_governor:
        assert (tmp_path / "elsewhere").read_text() == "schedutil\n"


@pytest.mark.parametrize("kind", list(RESTORE))
def test_a_bad_saved_state_is_one_line_and_writes_nothing(tmp_path, kind):
    content, pattern = RESTORE[kind]
    root = rk3588_tree(tmp_path / "sys")
    state = tmp_path / "run/held.json"
    state.parent.mkdir(mode=0o700)
    state.write_text(content)
    state.chmod(0o600)
    result = run_bounded([sys.executable, "-m", "edgeship_runtime.clocks", "restore", "--state", str(state), "--sysfs", str(root)])
    assert_one_clean_line(result, PREFIX, pattern)
    assert result.returncode == 2 and governors(root) == ORIGINAL
    assert state.read_text() == content and os.path.exists(state)  # kept, for whoever puts the clocks back by hand


@pytest.mark.parametrize("kind", list(STATE_FILE))
def test_a_state_file_someone_else_could_have_made_is_refused_and_kept(tmp_path, kind):
    spoil, pattern = STATE_FILE[kind]
    root = rk3588_tree(tmp_path / "sys")
    state = tmp_path / "run/held.json"
    content = '{"cpufreq": {"cpu0": "powersave"}, "devfreq": {}, "jetson_clocks": null}'
    state.parent.mkdir(mode=0o700)
    state.write_text(content)
    state.chmod(0o600)
    spoil(state)
    result = run_bounded([sys.executable, "-m", "edgeship_runtime.clocks", "restore", "--state", str(state), "--sysfs", str(root)])
    assert_one_clean_line(result, PREFIX, pattern)
    assert governors(root) == ORIGINAL and state.read_text() == content  # nothing written, nothing unlinked
