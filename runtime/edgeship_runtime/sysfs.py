"""Reading a board's sysfs/procfs and libraries below a `sysroot` ("/" on a board), so a
captured tree of another board can be inspected too (and is, in the tests)."""

from __future__ import annotations

import glob
import os

from edgeship_runtime.files import UnreadableFile, read_bounded

LIBRARY_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "usr/lib/aarch64-linux-gnu", "usr/lib/x86_64-linux-gnu")
READ_LIMIT = 1 << 20  # a sysfs attribute is one page; /proc/cpuinfo of a many-core board is tens of KiB


def read(sysroot: str, relative: str) -> str | None:
    """A file's text (NULs as newlines, stripped), or None when it cannot be read. Bounded, and
    never through a link in its last part or from a FIFO (which would wait forever): the root
    clock step reads with it too."""
    try:
        return read_bounded(os.path.join(sysroot, relative), READ_LIMIT, "sysfs file").replace(b"\0", b"\n").decode(errors="replace").strip()
    except (OSError, UnreadableFile):
        return None


def find_library(sysroot: str, name: str) -> str | None:
    for folder in LIBRARY_DIRS:
        matches = sorted(glob.glob(os.path.join(sysroot, folder, name + "*")))
        if matches:
            return matches[0]
    return None


def exists(sysroot: str, *patterns: str) -> bool:
    return any(glob.glob(os.path.join(sysroot, pattern)) for pattern in patterns)


def device_tree(sysroot: str) -> str:
    """The device-tree folder, relative to sysroot. EDGESHIP_DEVICE_TREE names another one, for
    boards whose firmware hides /proc/device-tree (and the board simulator, whose containers
    cannot mount over /proc)."""
    override = os.environ.get("EDGESHIP_DEVICE_TREE")
    if override:
        return override.lstrip("/")
    if os.path.exists(os.path.join(sysroot, "proc/device-tree/model")):
        return "proc/device-tree"
    return "sys/firmware/devicetree/base"


def clocks_sysfs(sysroot: str) -> str:
    """The folder standing for /sys where clocks live (cpufreq, devfreq, thermal), relative to
    sysroot. EDGESHIP_CLOCKS_SYSFS names another one: the board simulator's stand-in tree (its
    containers share a VM that has no cpufreq or thermal zones at all)."""
    override = os.environ.get("EDGESHIP_CLOCKS_SYSFS")
    return override.lstrip("/") if override else "sys"
