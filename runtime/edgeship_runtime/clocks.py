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
The root step takes its tree from its --sysfs argument alone (bench.yml passes the inventory's
edgeship_clocks_sysfs), never from the environment, which the board's user controls; as root, it
writes only in a tree root owns and alone may change, and never through a link that leaves it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import signal
import stat
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
CPU = re.compile(r"cpu(\d+)")  # cpu1x, cpufreq, cpuidle: not a core
ZONE = re.compile(r"thermal_zone(\d+)")
READ_LIMIT = 1 << 16  # a sysfs attribute is one page


def _relative(sysroot: str, tree: str | None) -> str:
    """The clocks folder relative to sysroot: `tree` when given (the root step's --sysfs), else
    clocks_sysfs (EDGESHIP_CLOCKS_SYSFS or "sys")."""
    return (tree.strip("/") or "sys") if tree is not None else clocks_sysfs(sysroot)


def _base(sysroot: str, tree: str | None = None) -> str:
    return os.path.join(sysroot, _relative(sysroot, tree))


def _root_only(path: str, what: str) -> None:
    """As root, `path` must be root's and writable by root alone: a folder the board's user may
    change could point root's writes anywhere."""
    if os.geteuid() != 0:
        return
    info = os.lstat(path)
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise ArtifactError(f"--lock-clocks: {what} {path} is not root's alone (owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}); "
                            "the root step reads and writes clocks only in a tree root owns and alone may change: /sys, or the "
                            "board's stand-in tree named by edgeship_clocks_sysfs")


def _tree(base: str) -> str:
    """The clock tree's real path (checked as root; a tree that does not exist has no clocks)."""
    real = os.path.realpath(base)
    if os.path.lexists(real):
        _root_only(real, "the clocks tree")
    return real


def _inside(tree: str, folder: str) -> str:
    """`folder`'s real path, refused unless it stays inside the tree (on a board cpuN/cpufreq and
    class/devfreq/* are links to elsewhere in /sys; never outside it)."""
    real = os.path.realpath(folder)
    if os.path.commonpath([tree, real]) != tree:
        raise ArtifactError(f"--lock-clocks: {folder} leads to {real}, outside the clocks tree {tree}; clocks are read and written "
                            "only inside it: check the board's sysfs (or its stand-in tree) for what put the link there")
    _root_only(real, "the clocks folder")
    return real


def _number(text: str | None, scale: float) -> float | None:
    return int(text) / scale if text and text.isdigit() else None


def _numbered(folders: list[str], pattern: re.Pattern, part) -> list[tuple[int, str]]:
    """(number, folder) for the folders whose name `part` fullmatches pattern, in number order."""
    found = []
    for folder in folders:
        matched = pattern.fullmatch(part(folder))
        if matched:
            found.append((int(matched.group(1)), folder))
    return sorted(found)


def _policies(base: str) -> dict[str, str]:
    """cpu name -> cpufreq folder (its real path, inside the tree), one per policy (on a board
    cpuN/cpufreq links to the policy its cluster shares: a cluster is held and recorded once)."""
    tree = _tree(base)
    found: dict[str, str] = {}
    seen = set()
    for _, folder in _numbered(glob.glob(os.path.join(base, CPUFREQ)), CPU, lambda path: os.path.basename(os.path.dirname(path))):
        real = _inside(tree, folder)
        if real not in seen:
            seen.add(real)
            found[os.path.basename(os.path.dirname(folder))] = real
    return found


def _devfreqs(base: str) -> dict[str, str]:
    """The devfreq devices a hold pins: an NPU (RK3588's fdab0000.npu) and the DDR controller (dmc)."""
    tree = _tree(base)
    return {os.path.basename(folder): _inside(tree, folder) for folder in sorted(glob.glob(os.path.join(base, DEVFREQ)))
            if os.path.basename(folder).endswith(".npu") or os.path.basename(folder) == "dmc"}


def _zones(base: str) -> list[str]:
    tree = _tree(base)
    return [_inside(tree, folder) for _, folder in _numbered(glob.glob(os.path.join(base, THERMAL)), ZONE, os.path.basename)]


def _read(folder: str, name: str) -> str | None:
    return read("/", os.path.join(folder, name))


def state(sysroot: str = "/", tree: str | None = None) -> dict:
    """The clocks as they are: cpufreq per policy (MHz), devfreq of the NPU and DDR (MHz), and
    every thermal zone (degrees C), keyed by its type."""
    base = _base(sysroot, tree)
    cpufreq = {name: {"governor": _read(folder, "scaling_governor"), "cur_mhz": _number(_read(folder, "scaling_cur_freq"), 1e3),
                      "min_mhz": _number(_read(folder, "scaling_min_freq"), 1e3), "max_mhz": _number(_read(folder, "scaling_max_freq"), 1e3),
                      "hw_max_mhz": _number(_read(folder, "cpuinfo_max_freq"), 1e3)}
               for name, folder in _policies(base).items()}
    devfreq = {name: {"governor": _read(folder, "governor"), "cur_mhz": _number(_read(folder, "cur_freq"), 1e6),
                      "max_mhz": _number(_read(folder, "max_freq"), 1e6)}
               for name, folder in _devfreqs(base).items()}
    thermal: dict[str, float] = {}
    for folder in _zones(base):
        celsius = _number(_read(folder, "temp"), 1e3)
        if celsius is not None:
            kind = _read(folder, "type") or os.path.basename(folder)
            thermal[kind if kind not in thermal else f"{kind} ({os.path.basename(folder)})"] = celsius
    return {"sysfs": "/" + _relative(sysroot, tree).strip("/") if sysroot == "/" else base, "cpufreq": cpufreq, "devfreq": devfreq,
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


def lock(sysroot: str = "/", store: str | None = None, tree: str | None = None) -> dict:
    """Hold the clocks; returns what was changed and how to put it back (restore's argument).
    Whatever is already held is left alone, so an unprivileged run finds held clocks held.
    `store`: where jetson_clocks keeps what it changes (root only; default: a fresh temporary file);
    one there already is an earlier hold's, not yet put back: kept (jetson_clocks would ask
    before overwriting it, and fail)."""
    base = _base(sysroot, tree)
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
                    _write(os.path.join(_inside(_tree(base), os.path.join(folder, "userspace")), "set_freq"), str(top))
        if os.path.exists(os.path.join(sysroot, JETSON_CLOCKS)) and os.geteuid() == 0:
            if store is None:
                # a name only root's folder holds: jetson_clocks --store makes the file (and refuses to overwrite one)
                store = os.path.join(tempfile.mkdtemp(prefix="edgeship-jetson-clocks-"), "jetson_clocks.conf")
            if not os.path.lexists(store):
                _jetson_clocks(sysroot, "--store", store)
                saved["jetson_clocks"] = store
            _jetson_clocks(sysroot)
    except BaseException:
        restore(saved, sysroot, tree)  # what was changed before the failure is put back
        raise
    return saved


def restore(saved: dict, sysroot: str = "/", tree: str | None = None) -> None:
    """Put back what `lock` changed. A saved state (read back from a file, by root) names only
    policies and devices that exist and governors they offer: it cannot point a write elsewhere."""
    base = _base(sysroot, tree)
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
    if isinstance(store, str) and os.path.lexists(store) and stat.S_ISREG(os.lstat(store).st_mode):
        try:
            _jetson_clocks(sysroot, "--restore", store)
            os.unlink(store)  # the next lock's `jetson_clocks --store` would ask before overwriting it, and fail
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
        for signum in previous:  # first: a second TERM does not cut the restore short; `timeout` KILLs 30 s later
            signal.signal(signum, signal.SIG_IGN)
        try:
            try:
                record["after"] = state(sysroot)
            finally:  # a tree that fails to read now still gets its clocks back
                if saved and (saved["cpufreq"] or saved["devfreq"] or saved["jetson_clocks"]):
                    restore(saved, sysroot)
            if saved and (saved["cpufreq"] or saved["devfreq"] or saved["jetson_clocks"]):
                record["restored"] = state(sysroot)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            for signum, handler in previous.items():
                signal.signal(signum, handler)


STATE_LIMIT = 1 << 16  # a saved state names a few dozen governors


def _private(path: str, what: str, folder: bool) -> None:
    """`path` (lstat: never followed) is the running user's (root's, in the root step), a real
    folder or regular file that nobody else may read or write: 0700 / 0600."""
    info = os.lstat(path)
    kind = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    if not kind or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ArtifactError(f"{what} {path} is not {'a folder' if folder else 'a file'} of uid {os.geteuid()} alone (uid {info.st_uid}, "
                            f"mode {oct(info.st_mode & 0o777)}{', a link' if stat.S_ISLNK(info.st_mode) else ''}); the root step keeps "
                            f"its state only where nobody else can change it: remove it, or give --state another place")


def _state_folder(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as error:
        raise ArtifactError(f"cannot make {folder} for the saved clock state ({error.strerror}); the lock runs as root (sudo), "
                            "or give --state a folder it may write") from None
    _private(folder, "the saved clock state's folder", folder=True)


def _saved(path: str) -> dict:
    """The state an earlier lock kept in `path`, refused unless it is the lock's own file and has
    the shape lock writes: governors by name, and jetson_clocks' file beside it (or none)."""
    from edgeship_runtime.files import UnreadableFile, read_json_object

    _private(path, "saved clock state", folder=False)
    try:
        saved = read_json_object(path, STATE_LIMIT, "saved clock state")
    except UnreadableFile as error:
        raise ArtifactError(f"{error}; set the governors by hand and remove it") from None
    why = None
    if set(saved) - {"cpufreq", "devfreq", "jetson_clocks"}:
        why = f"keys {sorted(set(saved) - {'cpufreq', 'devfreq', 'jetson_clocks'})} it never writes"
    elif not all(isinstance(saved.get(kind, {}), dict) and all(isinstance(value, str) for value in saved.get(kind, {}).values())
                 for kind in ("cpufreq", "devfreq")):
        why = "cpufreq and devfreq must map names to governors"
    elif saved.get("jetson_clocks") not in (None, path + ".jetson_clocks.conf"):
        why = f"jetson_clocks {str(saved.get('jetson_clocks'))[:200]!r}, not {path + '.jetson_clocks.conf'!r}"
    if why:
        raise ArtifactError(f"saved clock state {path} is not what lock writes ({why}); set the governors by hand and remove it")
    return saved


def _lock_to_file(path: str, sysroot: str, tree: str | None = None) -> dict:
    """Hold the clocks and keep what to put back in `path` (made here, never through a link). A
    file there already is an earlier hold not yet put back: what is not held now is held again,
    and the file keeps the board's first state (what restore puts back)."""
    import json

    from edgeship_runtime.files import write_new

    _state_folder(path)
    first = _saved(path) if os.path.lexists(path) else None
    saved = lock(sysroot, path + ".jetson_clocks.conf", tree)
    if first is not None:
        merged = {kind: {**saved[kind], **(first.get(kind) or {})} for kind in ("cpufreq", "devfreq")}
        merged["jetson_clocks"] = first.get("jetson_clocks") or saved["jetson_clocks"]
        saved, staged = merged, path + ".partial"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)  # a crashed earlier write's; unlink never follows a link
        write_new(staged, json.dumps(saved).encode(), mode=0o600)
        os.replace(staged, path)
        return {"held_by": "an earlier lock, not yet restored (held again)", "state_file": path, "changed": saved, "now": state(sysroot, tree)}
    try:
        write_new(path, json.dumps(saved).encode(), mode=0o600)
    except BaseException:
        restore(saved, sysroot, tree)
        raise
    return {"held_by": "this lock", "state_file": path, "changed": saved, "now": state(sysroot, tree)}


def _restore_from_file(path: str, sysroot: str, tree: str | None = None) -> dict:
    if not os.path.lexists(path):
        return {"restored": False, "why": f"{path} does not exist: nothing is held", "now": state(sysroot, tree)}
    _private(os.path.dirname(os.path.abspath(path)), "the saved clock state's folder", folder=True)
    saved = _saved(path)
    restore(saved, sysroot, tree)
    os.unlink(path)
    return {"restored": True, "now": state(sysroot, tree)}


def main(argv=None) -> int:
    """`python -m edgeship_runtime.clocks show|lock|restore`: the root step around a benchmark."""
    import json

    from edgeship_runtime import flags

    parser = flags.OneLineParser(prog="python -m edgeship_runtime.clocks", description=main.__doc__)
    parser.add_argument("action", choices=("show", "lock", "restore"), help="show the clocks, hold them, or put them back")
    parser.add_argument("--state", default="/run/edgeship/clocks-held.json",
                        help="where lock keeps what restore puts back (default /run/edgeship/clocks-held.json: a reboot clears both)")
    parser.add_argument("--sysfs", default="/sys",
                        help="the clocks tree (default /sys; a board simulator's stand-in tree); EDGESHIP_CLOCKS_SYSFS is not read here: "
                             "it is the board user's to set")
    args = parser.parse_args(argv)
    try:
        if args.action == "show":
            result = state("/", args.sysfs)
        elif args.action == "lock":
            result = _lock_to_file(args.state, "/", args.sysfs)
        else:
            result = _restore_from_file(args.state, "/", args.sysfs)
    except (ArtifactError, OSError) as error:  # OSError: a path that vanished between two looks
        print(flags.PREFIX + " ".join(str(error).split()), file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
