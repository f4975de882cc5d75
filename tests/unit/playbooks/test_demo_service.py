"""The demo's systemd unit, rendered from the role's template as Ansible renders it, checked by
systemd's own tools (`systemd-analyze verify` and its offline security review)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.support import ROOT

TEMPLATES = ROOT / "playbooks" / "roles" / "edgeship_demo" / "templates"


def render(tmp_path, **overrides) -> str:
    import jinja2

    # Ansible's template module: trim_blocks on, undefined variables are errors, `quote` is shlex.quote
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True)
    env.filters["quote"] = shlex.quote
    executable = tmp_path / "edgeship-runtime"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    values = dict(edgeship_demo_source="/dev/video0", edgeship_demo_listen="127.0.0.1:8080", edgeship_demo_service="edgeship-demo",
                  edgeship_demo_state="/home/edge/edgeship/demo", edgeship_demo_entry={"model": "digits"}, edgeship_demo_user="edge",
                  edgeship_demo_group=1000,
                  edgeship_demo_root="/home/edge/edgeship", edgeship_demo_device_allow=["char-drm rw", "/dev/rknpu rw"],
                  edgeship_demo_argv=[str(executable), "demo", "/home/edge/edgeship/current/artifacts/digits rk3588", "--source", "/dev/video0"])
    values.update(overrides)
    return env.get_template("edgeship-demo.service.j2").render(**values)


def test_the_unit_runs_unprivileged_with_only_camera_and_accelerator_devices(tmp_path):
    unit = render(tmp_path)
    lines = set(unit.splitlines())
    for directive in ("User=edge", "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true", "DevicePolicy=closed",
                      "DeviceAllow=char-video4linux rw", "DeviceAllow=char-drm rw", "DeviceAllow=/dev/rknpu rw", "CapabilityBoundingSet="):
        assert directive in lines, directive
    assert not any(line.startswith("DeviceAllow=") for line in lines - {"DeviceAllow=char-video4linux rw", "DeviceAllow=char-drm rw",
                                                                         "DeviceAllow=/dev/rknpu rw"})
    assert "ReadWritePaths=/home/edge/edgeship/demo -/home/edge/edgeship/engines" in lines
    assert "'/home/edge/edgeship/current/artifacts/digits rk3588'" in unit  # arguments are quoted


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit_and_rates_its_exposure_low(tmp_path):
    unit = tmp_path / "edgeship-demo.service"
    unit.write_text(render(tmp_path))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    exposure = re.search(r"Overall exposure level for edgeship-demo\.service: ([0-9.]+)", security.stdout)
    if exposure is None and "offline" in security.stderr:
        pytest.skip(f"this systemd-analyze has no --offline review: {security.stderr.strip()}")
    assert exposure, security.stdout + security.stderr
    print(f"systemd-analyze security: exposure {exposure.group(1)} (0 = locked down, 10 = unprotected)")
    assert float(exposure.group(1)) <= 3.0
