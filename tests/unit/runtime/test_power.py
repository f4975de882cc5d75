"""Power sampling reads hwmon sensors below a sysroot (a captured Jetson tree here)."""

from __future__ import annotations

import time

import pytest

from edgeship_runtime.bench import PowerSampler


def test_hwmon_power_sensors_are_sampled_in_watts(tmp_path):
    rail = tmp_path / "sys/class/hwmon/hwmon3"
    rail.mkdir(parents=True)
    (rail / "name").write_text("ina3221\n")
    (rail / "power1_label").write_text("VDD_IN\n")
    (rail / "power1_input").write_text("5120000\n")  # microwatts
    with PowerSampler(str(tmp_path), period_s=0.01) as sampler:
        time.sleep(0.05)
    result = sampler.result()
    assert result == {"available": True, "mean_w": {"ina3221/VDD_IN": 5.12}}


def test_no_sensor_is_recorded_as_unavailable(tmp_path):
    with PowerSampler(str(tmp_path)) as sampler:
        pass
    assert sampler.result()["available"] is False


def test_orin_ina3221_rails_are_voltage_times_current(tmp_path):
    """JetPack 5/6 on Orin: the ina3221 hwmon has no power file; each rail is inN (mV) x currN (mA)."""
    hwmon = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("ina3221\n")
    for channel, (label, millivolts, milliamps) in enumerate([("VDD_IN", 5008, 1240), ("VDD_CPU_GPU_CV", 5000, 312),
                                                             ("VDD_SOC", 4992, 400)], start=1):
        (hwmon / f"in{channel}_label").write_text(label + "\n")
        (hwmon / f"in{channel}_input").write_text(f"{millivolts}\n")
        (hwmon / f"curr{channel}_input").write_text(f"{milliamps}\n")
    (hwmon / "in7_input").write_text("5000\n")  # a sum channel with no current: not a rail
    with PowerSampler(str(tmp_path), period_s=0.01) as sampler:
        time.sleep(0.05)
    mean = sampler.result()["mean_w"]
    assert mean == pytest.approx({"ina3221/VDD_IN": 5008 * 1240 / 1e6, "ina3221/VDD_CPU_GPU_CV": 5000 * 312 / 1e6,
                                  "ina3221/VDD_SOC": 4992 * 400 / 1e6})
