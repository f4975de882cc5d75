"""`edgeship-runtime detect`: what board this is and which accelerators and runtimes it has.

Every path is read below `sysroot` ("/" on a board), so a captured sysfs tree of another
board can be inspected too (and is, in the tests).
"""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess

EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # unprogrammed / programmed Coral USB
RUNTIME_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "rknn-toolkit-lite2", "tensorrt", "pycoral", "numpy")
LIBRARY_DIRS = ("usr/lib", "usr/lib64", "usr/local/lib", "usr/lib/aarch64-linux-gnu", "usr/lib/x86_64-linux-gnu")


def _read(sysroot: str, relative: str) -> str | None:
    try:
        with open(os.path.join(sysroot, relative), "rb") as handle:
            return handle.read().replace(b"\0", b"\n").decode(errors="replace").strip()
    except OSError:
        return None


def _find_library(sysroot: str, name: str) -> str | None:
    for folder in LIBRARY_DIRS:
        matches = sorted(glob.glob(os.path.join(sysroot, folder, name + "*")))
        if matches:
            return matches[0]
    return None


def _device_tree(sysroot: str) -> str:
    """The device-tree folder, relative to sysroot. EDGESHIP_DEVICE_TREE names another one, for
    boards whose firmware hides /proc/device-tree (and the board simulator, whose containers
    cannot mount over /proc)."""
    override = os.environ.get("EDGESHIP_DEVICE_TREE")
    if override:
        return override.lstrip("/")
    if os.path.exists(os.path.join(sysroot, "proc/device-tree/model")):
        return "proc/device-tree"
    return "sys/firmware/devicetree/base"


def board_model(sysroot: str = "/") -> dict:
    tree = _device_tree(sysroot)
    model = _read(sysroot, f"{tree}/model")
    if model:
        return {"model": model.splitlines()[0], "source": "device-tree",
                "compatible": (_read(sysroot, f"{tree}/compatible") or "").split()}
    vendor, product = _read(sysroot, "sys/class/dmi/id/sys_vendor"), _read(sysroot, "sys/class/dmi/id/product_name")
    if vendor or product:
        return {"model": " ".join(x for x in (vendor, product) if x), "source": "dmi", "compatible": []}
    return {"model": "unknown", "source": None, "compatible": []}


def cpu(sysroot: str = "/") -> dict:
    governors, max_khz = {}, []
    for folder in sorted(glob.glob(os.path.join(sysroot, "sys/devices/system/cpu/cpu[0-9]*/cpufreq"))):
        governor = _read(sysroot, os.path.relpath(os.path.join(folder, "scaling_governor"), sysroot))
        if governor:
            governors[governor] = governors.get(governor, 0) + 1
        frequency = _read(sysroot, os.path.relpath(os.path.join(folder, "cpuinfo_max_freq"), sysroot))
        if frequency and frequency.isdigit():
            max_khz.append(int(frequency))
    return {"cores": os.cpu_count() if sysroot == "/" else len(glob.glob(os.path.join(sysroot, "sys/devices/system/cpu/cpu[0-9]*"))),
            "governors": governors or None, "max_mhz": max(max_khz) / 1000 if max_khz else None}


def edgetpu(sysroot: str = "/") -> dict:
    usb = []
    for device in glob.glob(os.path.join(sysroot, "sys/bus/usb/devices/*")):
        ids = (_read(sysroot, os.path.relpath(os.path.join(device, "idVendor"), sysroot)),
               _read(sysroot, os.path.relpath(os.path.join(device, "idProduct"), sysroot)))
        if ids in EDGETPU_USB_IDS:
            usb.append(":".join(ids))
    pcie = sorted(os.path.basename(p) for p in glob.glob(os.path.join(sysroot, "dev/apex_*")))
    library = _find_library(sysroot, "libedgetpu.so.1")
    return {"present": bool(usb or pcie), "usb": usb, "pcie": pcie, "libedgetpu": library}


def rockchip_npu(sysroot: str = "/") -> dict:
    from edgeship_runtime.backends.rknnlite import npu_present

    driver = _read(sysroot, "sys/kernel/debug/rknpu/version") or _read(sysroot, "sys/module/rknpu/version")
    library = _find_library(sysroot, "librknnrt.so")
    version = None
    if library:
        with open(library, "rb") as handle:
            found = re.search(rb"librknnrt version: ([0-9][0-9.]*[0-9])", handle.read())
        version = found.group(1).decode() if found else None
    return {"present": npu_present(sysroot), "driver": driver, "librknnrt": library, "librknnrt_version": version}


def nvidia(sysroot: str = "/") -> dict:
    release = _read(sysroot, "etc/nv_tegra_release")
    compatible = _read(sysroot, f"{_device_tree(sysroot)}/compatible") or ""
    jetson = bool(release) or "nvidia,tegra" in compatible
    # A Jetson's integrated GPU is there when its device nodes are (nvgpu on Orin, nvhost on older).
    igpu = jetson and any(glob.glob(os.path.join(sysroot, pattern)) for pattern in ("dev/nvgpu/igpu0", "dev/nvhost-gpu", "dev/nvhost-ctrl-gpu"))
    gpus = []
    for info in glob.glob(os.path.join(sysroot, "proc/driver/nvidia/gpus/*/information")):
        text = _read(sysroot, os.path.relpath(info, sysroot)) or ""
        found = re.search(r"Model:\s*(.+)", text)
        if found:
            gpus.append(found.group(1).strip())
    if not gpus and sysroot == "/" and shutil.which("nvidia-smi"):
        try:
            result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {"present": igpu or bool(gpus), "jetson": jetson, "integrated_gpu": igpu, "jetson_release": release.splitlines()[0] if release else None, "gpus": gpus}


def runtimes() -> dict:
    found = {}
    for name in RUNTIME_PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def detect(sysroot: str = "/") -> dict:
    accelerators = {"edgetpu": edgetpu(sysroot), "rknpu": rockchip_npu(sysroot), "nvidia_gpu": nvidia(sysroot)}
    return {
        "board": board_model(sysroot),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu": cpu(sysroot),
        "accelerators": accelerators,
        "available": ["cpu"] + [name for name, info in accelerators.items() if info["present"]],
        "runtimes": runtimes(),
    }
