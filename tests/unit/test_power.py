"""Power sampling reads hwmon sensors below a sysroot (a captured Jetson tree here)."""

from __future__ import annotations

import time

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
