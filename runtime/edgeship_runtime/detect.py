"""`edgeship-runtime detect`: what board this is and which accelerators and runtimes it has.

Every path is read below `sysroot` ("/" on a board), so a captured sysfs tree of another
board can be inspected too (and is, in the tests).
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform

from edgeship_runtime.sysfs import clocks_sysfs, device_tree, read


def board_model(sysroot: str = "/") -> dict:
    tree = device_tree(sysroot)
    model = read(sysroot, f"{tree}/model")
    if model:
        return {"model": model.splitlines()[0], "source": "device-tree",
                "compatible": (read(sysroot, f"{tree}/compatible") or "").split()}
    vendor, product = read(sysroot, "sys/class/dmi/id/sys_vendor"), read(sysroot, "sys/class/dmi/id/product_name")
    if vendor or product:
        return {"model": " ".join(x for x in (vendor, product) if x), "source": "dmi", "compatible": []}
    return {"model": "unknown", "source": None, "compatible": []}


def cpu(sysroot: str = "/") -> dict:
    governors: dict[str, int] = {}
    max_khz: list[int] = []
    for folder in sorted(glob.glob(os.path.join(sysroot, clocks_sysfs(sysroot), "devices/system/cpu/cpu[0-9]*/cpufreq"))):
        governor = read(sysroot, os.path.relpath(os.path.join(folder, "scaling_governor"), sysroot))
        if governor:
            governors[governor] = governors.get(governor, 0) + 1
        frequency = read(sysroot, os.path.relpath(os.path.join(folder, "cpuinfo_max_freq"), sysroot))
        if frequency and frequency.isdigit():
            max_khz.append(int(frequency))
    return {"cores": os.cpu_count() if sysroot == "/" else len(glob.glob(os.path.join(sysroot, "sys/devices/system/cpu/cpu[0-9]*"))),
            "governors": governors or None, "max_mhz": max(max_khz) / 1000 if max_khz else None}


def runtimes() -> dict:
    """Versions of the runtime packages every backend knows (and numpy) that are installed."""
    from edgeship_runtime.backends import all_backends

    found = {}
    packages = dict.fromkeys(package for cls in all_backends() for package in cls.packages)
    for name in (*packages, "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def accelerators(sysroot: str = "/") -> dict:
    """Each accelerator a backend knows, as that backend detects it."""
    from edgeship_runtime.backends import all_backends

    found = {}
    for cls in all_backends():
        if cls.accelerator != "cpu" and cls.accelerator not in found:
            found[cls.accelerator] = cls.detect_accelerator(sysroot)
    return found


def detect(sysroot: str = "/") -> dict:
    found = accelerators(sysroot)
    return {
        "board": board_model(sysroot),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu": cpu(sysroot),
        "accelerators": found,
        "available": ["cpu"] + [name for name, info in found.items() if info["present"]],
        "runtimes": runtimes(),
    }
