"""A board's clocks: what they are (cpufreq governors and frequencies, RK3588 NPU and DDR
devfreq, thermal zones) and holding them for a benchmark (`bench --lock-clocks`).

Held means what the vendors' own benchmarks do: every cpufreq policy on the `performance`
governor; RK3588's NPU and memory controller (devfreq `*.npu` and `dmc`, as rknn_benchmark's
scripts pin them) on `performance`, or on `userspace` at their top frequency where the kernel
offers no `performance`; and `jetson_clocks` where it is installed (`--store` keeps what it
changes, `--restore` puts it back).

Writing any of it needs root. `python -m edgeship_runtime.clocks lock|restore --state FILE` is the
small root step bench.yml runs with `become` around the unprivileged benchmark; a benchmark that
finds the clocks held already records them as held and writes nothing.

Every path is below clocks_sysfs ("/sys" on a board), so a captured or simulated tree works the same.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.sysfs import clocks_sysfs, read

CPUFREQ = "devices/system/cpu/cpu[0-9]*/cpufreq"
DEVFREQ = "class/devfreq/*"
THERMAL = "class/thermal/thermal_zone[0-9]*"
HELD = "performance"
JETSON_CLOCKS = "usr/bin/jetson_clocks"
COMMAND_TIMEOUT_S = 60  # jetson_clocks writes a few dozen sysfs files: seconds at most
GOVERNOR = re.compile(r"[a-z0-9_.-]{1,64}")  # what a saved state may name (it is written back as root)


def _base(sysroot: str) -> str:
    return os.path.join(sysroot, clocks_sysfs(sysroot))


def _number(text: str | None, scale: float) -> float | None:
    return int(text) / scale if text and text.isdigit() else None


def _policies(base: str) -> dict[str, str]:
    """cpu name -> cpufreq folder, one per policy (on a board cpuN/cpufreq links to the policy
    its cluster shares: a cluster is held and recorded once)."""
    found: dict[str, str] = {}
    seen = set()
    for folder in sorted(glob.glob(os.path.join(base, CPUFREQ)), key=lambda path: int(re.findall(r"cpu(\d+)/cpufreq$", path)[0])):
        real = os.path.realpath(folder)
        if real not in seen:
            seen.add(real)
            found[os.path.basename(os.path.dirname(folder))] = folder
    return found


def _devfreqs(base: str) -> dict[str, str]:
    """The devfreq devices a hold pins: an NPU (RK3588's fdab0000.npu) and the DDR controller (dmc)."""
    return {os.path.basename(folder): folder for folder in sorted(glob.glob(os.path.join(base, DEVFREQ)))
            if os.path.basename(folder).endswith(".npu") or os.path.basename(folder) == "dmc"}


def _read(folder: str, name: str) -> str | None:
    return read("/", os.path.join(folder, name))


def state(sysroot: str = "/") -> dict:
    """The clocks as they are: cpufreq per policy (MHz), devfreq of the NPU and DDR (MHz), and
    every thermal zone (degrees C), keyed by its type."""
    base = _base(sysroot)
    cpufreq = {name: {"governor": _read(folder, "scaling_governor"), "cur_mhz": _number(_read(folder, "scaling_cur_freq"), 1e3),
                      "min_mhz": _number(_read(folder, "scaling_min_freq"), 1e3), "max_mhz": _number(_read(folder, "scaling_max_freq"), 1e3),
                      "hw_max_mhz": _number(_read(folder, "cpuinfo_max_freq"), 1e3)}
               for name, folder in _policies(base).items()}
    devfreq = {name: {"governor": _read(folder, "governor"), "cur_mhz": _number(_read(folder, "cur_freq"), 1e6),
                      "max_mhz": _number(_read(folder, "max_freq"), 1e6)}
               for name, folder in _devfreqs(base).items()}
    thermal: dict[str, float] = {}
    for folder in sorted(glob.glob(os.path.join(base, THERMAL)), key=lambda path: int(re.findall(r"(\d+)$", path)[0])):
        celsius = _number(_read(folder, "temp"), 1e3)
        if celsius is not None:
            kind = _read(folder, "type") or os.path.basename(folder)
            thermal[kind if kind not in thermal else f"{kind} ({os.path.basename(folder)})"] = celsius
    return {"sysfs": "/" + clocks_sysfs(sysroot).strip("/") if sysroot == "/" else base, "cpufreq": cpufreq, "devfreq": devfreq,
            "thermal_c": thermal, "jetson_clocks": os.path.exists(os.path.join(sysroot, JETSON_CLOCKS))}


def is_held(found: dict) -> bool:
    """Every cpufreq policy on `performance` and the NPU/DDR on `performance` or `userspace`."""
    return bool(found["cpufreq"]) and all(policy["governor"] == HELD for policy in found["cpufreq"].values()) and \
        all(device["governor"] in (HELD, "userspace") for device in found["devfreq"].values())


def _write(path: str, value: str) -> None:
    """One sysfs attribute, never through a link in its last part."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            os.write(descriptor, value.encode() + b"\n")
        finally:
            os.close(descriptor)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ArtifactError(f"--lock-clocks: {path} is a symbolic link; clocks are written to the attribute itself, never through "
                                "a link: check the board's sysfs (or EDGESHIP_CLOCKS_SYSFS) for what put it there") from None
        fix = (f"holding clocks needs root: run `sudo {sys.executable} -m edgeship_runtime.clocks lock --state FILE` before the "
               "benchmark (bench.yml does, with edgeship_bench_lock_clocks=true), or run without --lock-clocks") \
            if error.errno in (errno.EPERM, errno.EACCES, errno.EROFS) else "is this board's cpufreq/devfreq driver loaded?"
        raise ArtifactError(f"--lock-clocks: cannot write {value!r} to {path} ({error.strerror}); {fix}") from None


def _offered(folder: str, attribute: str, governor: str, what: str) -> None:
    offered = (_read(folder, attribute) or "").split()
    if governor not in offered:
        raise ArtifactError(f"--lock-clocks: {what} offers no {governor!r} governor ({os.path.join(folder, attribute)}: "
                            f"{' '.join(offered) or 'nothing'}); build the kernel with it, or run without --lock-clocks")


def _jetson_clocks(sysroot: str, *arguments: str) -> None:
    command = [os.path.join(sysroot, JETSON_CLOCKS), *arguments]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"--lock-clocks: `{' '.join(command)}` did not finish within {COMMAND_TIMEOUT_S} s; "
                            "run it by hand to see where it waits") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        raise ArtifactError(f"--lock-clocks: `{' '.join(command)}` failed (exit {done.returncode}: {last[0][:200]}); it needs root")


def lock(sysroot: str = "/", store: str | None = None) -> dict:
    """Hold the clocks; returns what was changed and how to put it back (restore's argument).
    Whatever is already held is left alone, so an unprivileged run finds held clocks held.
    `store`: where jetson_clocks keeps what it changes (root only; default: a fresh temporary file)."""
    base = _base(sysroot)
    policies = _policies(base)
    if not policies:
        raise ArtifactError(f"--lock-clocks: no cpufreq policy under {os.path.join(base, CPUFREQ)}; this board's clocks cannot be held "
                            "(a VM or a kernel without cpufreq): run without --lock-clocks")
    saved: dict = {"cpufreq": {}, "devfreq": {}, "jetson_clocks": None}
    try:
        for name, folder in policies.items():
            governor = _read(folder, "scaling_governor")
            if governor != HELD:
                _offered(folder, "scaling_available_governors", HELD, name)
                _write(os.path.join(folder, "scaling_governor"), HELD)
                saved["cpufreq"][name] = governor
        for name, folder in _devfreqs(base).items():
            governor = _read(folder, "governor")
            offered = (_read(folder, "available_governors") or "").split()
            wanted = HELD if HELD in offered or "userspace" not in offered else "userspace"
            if governor in (HELD, "userspace"):
                continue
            _offered(folder, "available_governors", wanted, name)
            _write(os.path.join(folder, "governor"), wanted)
            saved["devfreq"][name] = governor
            if wanted == "userspace":  # its top frequency, as rknn_benchmark's scripts set it
                top = max((int(f) for f in (_read(folder, "available_frequencies") or "").split() if f.isdigit()), default=None)
                if top:
                    _write(os.path.join(folder, "userspace/set_freq"), str(top))
        if os.path.exists(os.path.join(sysroot, JETSON_CLOCKS)) and os.geteuid() == 0:
            if store is None:
                handle, store = tempfile.mkstemp(prefix="edgeship-jetson-clocks-", suffix=".conf")
                os.close(handle)
            _jetson_clocks(sysroot, "--store", store)
            saved["jetson_clocks"] = store
            _jetson_clocks(sysroot)
    except BaseException:
        restore(saved, sysroot)  # what was changed before the failure is put back
        raise
    return saved


def restore(saved: dict, sysroot: str = "/") -> None:
    """Put back what `lock` changed. A saved state (read back from a file, by root) names only
    policies and devices that exist and governors they offer: it cannot point a write elsewhere."""
    base = _base(sysroot)
    policies, devices = _policies(base), _devfreqs(base)
    problems = []
    for kind, known, attribute, offered in (("cpufreq", policies, "scaling_governor", "scaling_available_governors"),
                                            ("devfreq", devices, "governor", "available_governors")):
        for name, governor in (saved.get(kind) or {}).items():
            folder = known.get(name)
            if folder is None or not isinstance(governor, str) or not GOVERNOR.fullmatch(governor) or \
                    governor not in (_read(folder, offered) or "").split():
                problems.append(f"{kind} {name!r} to {governor!r} (no such policy or governor here)")
                continue
            try:
                _write(os.path.join(folder, attribute), governor)
            except ArtifactError as error:
                problems.append(str(error).removeprefix("--lock-clocks: "))
    store = saved.get("jetson_clocks")
    if isinstance(store, str) and os.path.isfile(store):
        try:
            _jetson_clocks(sysroot, "--restore", store)
        except ArtifactError as error:
            problems.append(str(error).removeprefix("--lock-clocks: "))
    if problems:
        raise ArtifactError(f"the clocks could not all be put back: {'; '.join(problems)}; set them by hand, or reboot the board")


def _stop(signum, frame):
    # raised in the main thread, so every `finally` on the way out runs and the clocks go back
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def held(lock_clocks: bool, sysroot: str = "/") -> Iterator[dict]:
    """The clock record of a benchmark: the state before and after it; with `lock_clocks`, held
    during it and put back after it, also when it fails or is stopped (SIGTERM: `timeout`; SIGHUP:
    a dropped SSH session)."""
    record: dict = {"lock_requested": lock_clocks, "held_by": None, "changed": None, "initial": None, "restored": None}
    saved, previous, scratch = None, {}, None
    if lock_clocks:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _stop)
    try:
        if lock_clocks:
            record["initial"] = state(sysroot)
            scratch = tempfile.mkdtemp(prefix="edgeship-clocks-")
            saved = lock(sysroot, os.path.join(scratch, "jetson_clocks.conf"))
            changed = {**saved["cpufreq"], **saved["devfreq"]}
            record["changed"] = {"governors": changed, "jetson_clocks": bool(saved["jetson_clocks"])}
            record["held_by"] = "this run" if changed or saved["jetson_clocks"] else "already held"
        record["before"] = state(sysroot)
        record["held"] = is_held(record["before"])
        yield record
    finally:
        record["after"] = state(sysroot)
        for signum in previous:  # a second TERM does not cut the restore short; `timeout` KILLs 30 s later
            signal.signal(signum, signal.SIG_IGN)
        try:
            if saved and (saved["cpufreq"] or saved["devfreq"] or saved["jetson_clocks"]):
                restore(saved, sysroot)
                record["restored"] = state(sysroot)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            for signum, handler in previous.items():
                signal.signal(signum, handler)


STATE_LIMIT = 1 << 16  # a saved state names a few dozen governors


def _lock_to_file(path: str, sysroot: str) -> dict:
    """Hold the clocks and keep what to put back in `path` (made here, never through a link). A
    file there already is an earlier hold not yet put back: it keeps the board's first state."""
    import json

    from edgeship_runtime.files import write_new

    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as error:
        raise ArtifactError(f"cannot make {folder} for the saved clock state ({error.strerror}); the lock runs as root (sudo), "
                            "or give --state a folder it may write") from None
    if os.path.lexists(path):
        return {"held_by": "an earlier lock, not yet restored", "state_file": path, "now": state(sysroot)}
    saved = lock(sysroot, path + ".jetson_clocks.conf")
    try:
        write_new(path, json.dumps(saved).encode(), mode=0o600)
    except BaseException:
        restore(saved, sysroot)
        raise
    return {"held_by": "this lock", "state_file": path, "changed": saved, "now": state(sysroot)}


def _restore_from_file(path: str, sysroot: str) -> dict:
    from edgeship_runtime.files import UnreadableFile, read_json_object

    if not os.path.lexists(path):
        return {"restored": False, "why": f"{path} does not exist: nothing is held", "now": state(sysroot)}
    try:
        saved = read_json_object(path, STATE_LIMIT, "saved clock state")
    except UnreadableFile as error:
        raise ArtifactError(f"{error}; set the governors by hand and remove it") from None
    restore(saved, sysroot)
    os.unlink(path)
    return {"restored": True, "now": state(sysroot)}


def main(argv=None) -> int:
    """`python -m edgeship_runtime.clocks show|lock|restore`: the root step around a benchmark."""
    import json

    from edgeship_runtime import flags

    parser = flags.OneLineParser(prog="python -m edgeship_runtime.clocks", description=main.__doc__)
    parser.add_argument("action", choices=("show", "lock", "restore"), help="show the clocks, hold them, or put them back")
    parser.add_argument("--state", default="/run/edgeship/clocks-held.json",
                        help="where lock keeps what restore puts back (default /run/edgeship/clocks-held.json: a reboot clears both)")
    args = parser.parse_args(argv)
    try:
        if args.action == "show":
            result = state()
        elif args.action == "lock":
            result = _lock_to_file(args.state, "/")
        else:
            result = _restore_from_file(args.state, "/")
    except ArtifactError as error:
        print(flags.PREFIX + " ".join(str(error).split()), file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
