"""`detect` reads sysfs/procfs below a sysroot: captured trees of boards we do not have."""

from __future__ import annotations

from pathlib import Path

from edgeship_runtime.detect import detect


def write(root: Path, relative: str, content: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_rk3588_board_with_npu_and_librknnrt(tmp_path):
    write(tmp_path, "proc/device-tree/model", b"Rockchip RK3588 EVB1 LP4 V10 Board\0")
    write(tmp_path, "proc/device-tree/compatible", b"rockchip,rk3588-evb1-lp4-v10\0rockchip,rk3588\0")
    write(tmp_path, "sys/kernel/debug/rknpu/version", "RKNPU driver: v0.9.6\n")
    write(tmp_path, "usr/lib/librknnrt.so", b"\x7fELF....librknnrt version: 2.5.0 (5d0ae8b build@2025-06-10T11:43:42)\0")
    for core in range(8):
        write(tmp_path, f"sys/devices/system/cpu/cpu{core}/cpufreq/scaling_governor", "performance\n" if core < 4 else "schedutil\n")
        write(tmp_path, f"sys/devices/system/cpu/cpu{core}/cpufreq/cpuinfo_max_freq", "1800000\n" if core < 4 else "2400000\n")
    found = detect(str(tmp_path))
    assert found["board"] == {"model": "Rockchip RK3588 EVB1 LP4 V10 Board", "source": "device-tree",
                              "compatible": ["rockchip,rk3588-evb1-lp4-v10", "rockchip,rk3588"]}
    assert found["accelerators"]["rknpu"]["present"] and found["accelerators"]["rknpu"]["librknnrt_version"] == "2.5.0"
    assert found["accelerators"]["rknpu"]["driver"] == "RKNPU driver: v0.9.6"
    assert found["available"] == ["cpu", "rknpu"]
    assert found["cpu"] == {"cores": 8, "governors": {"performance": 4, "schedutil": 4}, "max_mhz": 2400.0}


def test_jetson_and_coral_usb(tmp_path):
    write(tmp_path, "proc/device-tree/model", b"NVIDIA Jetson Orin Nano Developer Kit\0")
    write(tmp_path, "proc/device-tree/compatible", b"nvidia,p3768-0000+p3767-0005\0nvidia,tegra234\0")
    write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    write(tmp_path, "sys/bus/usb/devices/2-1/idVendor", "18d1\n")
    write(tmp_path, "sys/bus/usb/devices/2-1/idProduct", "9302\n")
    # A Jetson without its GPU device node (a container without --runtime nvidia, a simulated board)
    assert detect(str(tmp_path))["accelerators"]["nvidia_gpu"]["present"] is False
    write(tmp_path, "dev/nvgpu/igpu0/ctrl", "")
    found = detect(str(tmp_path))
    assert found["accelerators"]["nvidia_gpu"]["jetson"] and found["accelerators"]["nvidia_gpu"]["jetson_release"].startswith("# R36")
    assert found["accelerators"]["nvidia_gpu"]["integrated_gpu"] is True
    assert found["accelerators"]["edgetpu"] == {"present": True, "usb": ["18d1:9302"], "pcie": [], "libedgetpu": None}
    assert found["available"] == ["cpu", "edgetpu", "nvidia_gpu"]


def test_x86_server_from_dmi(tmp_path):
    write(tmp_path, "sys/class/dmi/id/sys_vendor", "QEMU\n")
    write(tmp_path, "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n")
    found = detect(str(tmp_path))
    assert found["board"]["model"] == "QEMU Standard PC (Q35 + ICH9, 2009)" and found["board"]["source"] == "dmi"
    assert found["available"] == ["cpu"]


def test_device_tree_folder_named_by_environment(tmp_path, monkeypatch):
    """Boards whose firmware hides /proc/device-tree (and simulated boards) point detect elsewhere."""
    write(tmp_path, "etc/edgeship/device-tree/model", b"Radxa ROCK 5B (edgeship simulated)\0")
    write(tmp_path, "etc/edgeship/device-tree/compatible", b"radxa,rock-5b\0rockchip,rk3588\0")
    monkeypatch.setenv("EDGESHIP_DEVICE_TREE", "/etc/edgeship/device-tree")
    board = detect(str(tmp_path))["board"]
    assert board == {"model": "Radxa ROCK 5B (edgeship simulated)", "source": "device-tree", "compatible": ["radxa,rock-5b", "rockchip,rk3588"]}
    assert detect(str(tmp_path))["available"] == ["cpu"]
