"""The one set-up step of a controller machine: what edgeship needs from the operating system.

`./dev` runs `invoke setup` before every task. As root on Debian/Ubuntu it installs what is
missing in ONE apt transaction (the Docker engine, debootstrap, qemu-user for emulated boards,
headless Chromium for the viewer checks, espeak-ng and sox for the vad example's audio) and starts what must run (dockerd, binfmt_misc for
qemu). Elsewhere it only reports what is missing. Library code never installs anything: it
checks (`require`) and names the missing piece and this step in one line.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.waiting import run_bounded

DOCKERD_LOG = Path("/var/log/edgeship-dockerd.log")
DOCKERD_START_TIMEOUT_S = 60
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU = {"arm64": "qemu-aarch64"}  # Debian architecture of an emulated board -> its binfmt_misc entry
APT_UPDATE_TIMEOUT_S, APT_INSTALL_TIMEOUT_S = 600, 1800  # the install is Docker, qemu and Chromium: a few hundred MB
LOCAL_COMMAND_TIMEOUT_S = 60  # mount, update-binfmts: no network, done in a moment


@dataclass(frozen=True)
class Need:
    name: str
    packages: tuple[str, ...]  # Debian packages that provide it
    present: Callable[[], bool]
    what_for: str


def _executable(*paths: str) -> Callable[[], bool]:
    return lambda: all(os.access(path, os.X_OK) or shutil.which(path) for path in paths)


NEEDS = (
    Need("docker engine", ("docker.io",), _executable("dockerd"), "toolchain images, conversions and the simulated boards"),
    Need("debootstrap", ("debootstrap",), _executable("debootstrap"), "base images made from Debian's archive (no registry needed)"),
    Need("qemu-user", ("qemu-user-static", "binfmt-support"), _executable("/usr/bin/qemu-aarch64-static", "update-binfmts"),
         "arm64 boards emulated on this machine"),
    Need("headless chromium", ("chromium", "chromium-driver"), _executable("/usr/bin/chromium", "/usr/bin/chromedriver"),
         "looking at the demo's viewer page and the HTML report"),
    Need("espeak-ng and sox", ("espeak-ng", "sox"), _executable("espeak-ng", "sox"),
         "the vad example's audio: speech spoken and mixed with noise here (nothing downloaded)"),
    # Debian keeps the server's binaries under /usr/lib/postgresql/<major>/bin, off PATH
    Need("postgresql server", ("postgresql",), lambda: bool(shutil.which("pg_ctl") or glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
         "the tests of the shared PostgreSQL results store (they start a server of their own)"),
)


def missing() -> list[Need]:
    return [need for need in NEEDS if not need.present()]


def require(name: str) -> None:
    """Fail with one line when a piece of the set-up is missing."""
    need = next(need for need in NEEDS if need.name == name)
    if not need.present():
        raise EdgeshipError(f"{need.name} is missing (needed for {need.what_for}); run `./dev setup` as root, or install "
                            f"the Debian packages {' '.join(need.packages)}")


def _is_debian_like() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def apt_install(*packages: str) -> None:
    """`apt-get update` then a quiet, non-interactive `apt-get install -y` of the packages."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command, seconds in ((["apt-get", "update", "-qq"], APT_UPDATE_TIMEOUT_S),
                             (["apt-get", "install", "-y", "-qq", *packages], APT_INSTALL_TIMEOUT_S)):
        _checked(command, seconds, " ".join(command[:2]), "check the network and the apt sources, then run `./dev setup` again", env=env)


def _checked(command: list[str], seconds: float, what: str, fix: str, **kwargs) -> None:
    """Run a set-up command, bounded; one line when it fails or hangs (its own message is above it)."""
    result = run_bounded(command, seconds, what, fix, **kwargs)
    if result.returncode != 0:
        raise EdgeshipError(f"{what} failed (exit {result.returncode}; its message is above); {fix}")


def docker_client():
    """A docker SDK client for a running engine, or None."""
    import docker  # the SDK is a controller dependency; imported here to keep `import edgeship` light

    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def start_dockerd() -> None:
    from edgeship.waiting import wait_until

    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    print(f"edgeship: starting {dockerd} (log: {DOCKERD_LOG})", flush=True)
    with open(DOCKERD_LOG, "ab") as log:
        # A new session so the daemon outlives this process and the invoke run that started it.
        subprocess.Popen([dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_until(docker_client, DOCKERD_START_TIMEOUT_S, f"dockerd did not answer within {DOCKERD_START_TIMEOUT_S} s; see {DOCKERD_LOG} for why")


def binfmt_entry(arch: str) -> Path:
    return BINFMT / QEMU[arch]


def emulation_ready(arch: str) -> bool:
    entry = binfmt_entry(arch)
    return entry.exists() and "enabled" in entry.read_text() and "C" in _binfmt_fields(entry).get("flags:", "")


def _binfmt_fields(entry: Path) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(" ") for line in entry.read_text().splitlines()) if value}


def enable_emulation(arch: str) -> None:
    """binfmt_misc on, the qemu entry enabled and registered with the C (credentials) flag, so
    setuid programs (sudo) work on emulated boards as on real ones (what `qemu-user-static
    --credential yes` does)."""
    qemu = QEMU[arch]
    if not (BINFMT / "register").exists():
        _checked(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], LOCAL_COMMAND_TIMEOUT_S, f"mounting binfmt_misc on {BINFMT}",
                 "arm64 boards are emulated through binfmt_misc: load the module (modprobe binfmt_misc) as root")
    _checked(["update-binfmts", "--enable", qemu], LOCAL_COMMAND_TIMEOUT_S, f"update-binfmts --enable {qemu}",
             "reinstall qemu-user-static and binfmt-support, then run `./dev setup` again")
    entry = binfmt_entry(arch)
    fields = _binfmt_fields(entry)
    if "C" in fields.get("flags:", ""):
        return

    def escape(hexdigits: str) -> str:
        return "".join(f"\\x{hexdigits[i:i + 2]}" for i in range(0, len(hexdigits), 2))

    rule = (f":{entry.name}:M:{fields['offset']}:{escape(fields['magic'])}:{escape(fields['mask'])}:"
            f"{fields['interpreter']}:{fields.get('flags:', '')}OC")
    entry.write_text("-1")  # remove the entry, then register it again with credentials
    (BINFMT / "register").write_text(rule)


def setup(quiet: bool = False) -> list[str]:
    """Install and start what is missing (as root on Debian/Ubuntu); return what is still missing."""
    root = os.geteuid() == 0 and _is_debian_like()
    absent = missing()
    if absent and root:
        packages = [package for need in absent for package in need.packages]
        print(f"edgeship: installing {' '.join(packages)} (apt, once)", flush=True)
        apt_install(*packages)
        absent = missing()
    if root and not absent:
        if docker_client() is None:
            start_dockerd()
        for arch in QEMU:
            if not emulation_ready(arch):
                enable_emulation(arch)
    notes = [f"{need.name} (Debian: {' '.join(need.packages)}) for {need.what_for}" for need in absent]
    if not root and docker_client() is None:
        notes.append("a running Docker engine (start dockerd, or run `./dev setup` as root)")
    if notes and not quiet:
        print("edgeship: missing on this machine: " + "; ".join(notes), flush=True)
    return notes
