"""Deploy time on the simulated fleet: 1 board vs 4 boards, and a first deploy vs an unchanged re-deploy.

    .venv/bin/python benchmarks/fleet_deploy.py [--artifacts artifacts] [--models digits]

It starts its own four x86_64 boards of one kind (b-rpi1..4, ports 22501-22504, so a fleet
started from inventory.ini is left alone), deploys the real playbook through real SSH and
prints the wall-clock times and their ratios. Goals (from the fleet issue): 4 boards within
1.5x of one board, and an unchanged re-deploy at most half of a first deploy. The boards are
removed at the end. Each timed deploy gets a new release label, so every board installs a
release it has not seen (same files, new id); the warm-up run fills the controller's caches.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from edgeship.paths import REPO_ROOT as ROOT

BOARDS = ("b-rpi1", "b-rpi2", "b-rpi3", "b-rpi4")


def inventory_text(port_base: int) -> str:
    hosts = "\n".join(f"{host} ansible_port={port_base + i + 1}" for i, host in enumerate(BOARDS))
    return f"""[rpi]
{hosts}

[rpi:vars]
edgeship_target=tflite
edgeship_quant=fp16
edgeship_cpu_target=tflite
edgeship_cpu_quant=fp16
edgeship_arch=x86_64
edgeship_python="3.11"

[sim]
{chr(10).join(BOARDS)}

[sim:vars]
ansible_host=127.0.0.1
ansible_user=edge
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file={{{{ inventory_dir }}}}/.sim/controller_ed25519
ansible_ssh_common_args=-o UserKnownHostsFile={{{{ inventory_dir }}}}/.sim/known_hosts -o StrictHostKeyChecking=yes
"""


def busy_cpu_s() -> float:
    """CPU seconds this machine spent busy so far (controller and the boards' containers share it)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed_deploy(inventory: Path, artifacts: Path, models: list[str], label: str, limit: str | None) -> tuple[float, float]:
    from edgeship.fleet.playbook import run_playbook

    extra: dict[str, object] = {"edgeship_release_artifacts_root": str(artifacts.resolve()), "edgeship_release_label": label}
    if models:
        extra["edgeship_release_models"] = models
    began, cpu_began = time.perf_counter(), busy_cpu_s()
    result = run_playbook("deploy.yml", inventory, limit, extra, capture=True)
    seconds, cpu = time.perf_counter() - began, busy_cpu_s() - cpu_began
    if result.returncode != 0:
        print(result.stdout[-4000:])
        raise SystemExit(f"deploy ({label}, limit {limit}) failed with exit {result.returncode}")
    changed = [int(n) for n in re.findall(r"changed=(\d+)", result.stdout)]
    print(f"  {label:<12} {limit or 'all 4 boards':<13} {seconds:7.1f} s wall, {cpu:6.1f} CPU-s busy   changed per board: {changed}", flush=True)
    return seconds, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default=str(ROOT / "artifacts"), help="artifacts root (default: artifacts/)")
    parser.add_argument("--models", default="digits", help="comma-separated models to deploy (default: digits)")
    parser.add_argument("--port-base", type=int, default=22500)
    args = parser.parse_args()
    from edgeship.fleet import sim

    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="edgeship-bench-fleet-") as folder:
        inventory = Path(folder) / "inventory.ini"
        inventory.write_text(inventory_text(args.port_base))
        sim.up(inventory)
        try:
            artifacts = Path(args.artifacts)
            print("warm-up (controller caches, not timed):", flush=True)
            timed_deploy(inventory, artifacts, models, "warmup", BOARDS[0])
            print("timed:", flush=True)
            one, one_cpu = timed_deploy(inventory, artifacts, models, "one-board", BOARDS[0])
            four, four_cpu = timed_deploy(inventory, artifacts, models, "four-boards", None)
            again, _ = timed_deploy(inventory, artifacts, models, "four-boards", None)
        finally:
            sim.down(inventory, purge=True)
    cores = os.cpu_count() or 1
    print(f"\ndeploy to 1 board: {one:.1f} s; to 4 boards: {four:.1f} s; ratio {four / one:.2f} (goal <= 1.5)")
    print(f"  the simulated boards share this machine's {cores} cores with the controller: 4 boards kept it busy for {four_cpu:.1f} CPU-s, "
          f"so no schedule could finish in under {four_cpu / cores:.1f} s here (CPU-bound floor ratio {four_cpu / cores / one:.2f}); "
          f"real boards bring their own CPUs")
    print(f"first deploy to 4 boards: {four:.1f} s; unchanged re-deploy: {again:.1f} s; ratio {again / four:.2f} (goal <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
