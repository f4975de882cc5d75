"""Fleet-tier helpers: an inventory of its own, the playbooks run as a user runs them, board access."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

# The fleet tier's own board names and ports. A second fleet run on the same machine (a developer
# beside CI) sets both, so the two never share a container or a port.
PREFIX = os.environ.get("EDGESHIP_TEST_FLEET_PREFIX", "t-")
PORT_BASE = int(os.environ.get("EDGESHIP_TEST_FLEET_PORT_BASE", "22300"))


def host(group: str) -> str:
    """The test fleet's board of a group: host("rpi") is "t-rpi" unless the prefix is set."""
    return f"{PREFIX}{group}"


def fleet_inventory(folder: Path, prefix: str = PREFIX, port_base: int = PORT_BASE, extra_hosts: str = "") -> Path:
    """The shipped inventory with its own board names and ports, so a user's fleet is left alone."""
    text = (ROOT / "inventory.ini").read_text()
    text = re.sub(r"\bsim-", prefix, text)
    text = re.sub(r"ansible_port=222(\d\d)", lambda m: f"ansible_port={port_base + int(m.group(1))}", text)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inventory.ini"
    path.write_text(text + extra_hosts)
    return path


@dataclass
class Fleet:
    inventory: Path
    artifacts: Path
    results: Path

    def playbook(self, name: str, limit: str | None = None, **extra) -> subprocess.CompletedProcess:
        from edgeship.fleet.playbook import run_playbook

        extra.setdefault("edgeship_release_artifacts_root", str(self.artifacts))
        extra.setdefault("edgeship_bench_results_dir", str(self.results))
        extra.setdefault("edgeship_bench_args", ["--warmup-runs", "2", "--warmup-s", "0.2", "--min-runs", "10", "--min-s", "0.5"])
        # the tier's deploys reach their boards at once, as before waves (tests/fleet/test_waves.py rolls out in waves), with a short gate
        extra.setdefault("edgeship_waves", ["100%"])
        extra.setdefault("edgeship_health_bench_args", ["--warmup-runs", "2", "--warmup-s", "0.2", "--min-runs", "10", "--min-s", "0.5",
                                                        "--max-s", "5"])
        result = run_playbook(name, self.inventory, limit, extra, capture=True)
        print(result.stdout)
        return result

    def board(self, host: str, *command: str) -> subprocess.CompletedProcess:
        """A command on the board as its user, over the container runtime (not the path under test)."""
        return subprocess.run(["docker", "exec", "-u", "edge", f"edgeship-sim-{host}", *command], capture_output=True, text=True)

    def current(self, host: str) -> str | None:
        result = self.board(host, "readlink", "/home/edge/edgeship/current")
        return Path(result.stdout.strip()).name if result.returncode == 0 else None

    def releases(self, host: str) -> list[str]:
        result = self.board(host, "ls", "/home/edge/edgeship/releases")
        return sorted(result.stdout.split()) if result.returncode == 0 else []


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    hosts = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        hosts[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
    return hosts


def corrupt_copy(artifacts: Path, destination: Path, pattern: str) -> Path:
    """A copy of the artifacts root; returns the copied artifact folder matching pattern."""
    shutil.copytree(artifacts, destination)
    return next(p for p in sorted(destination.iterdir()) if re.match(pattern, p.name))
