"""Find a running Docker engine, or bring one up on a Debian/Ubuntu machine where we are root."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from edgeship.apt import apt_install
from edgeship.errors import EdgeshipError

DOCKERD_LOG = Path("/var/log/edgeship-dockerd.log")
START_TIMEOUT_S = 60


def _ping():
    import docker  # the SDK is a controller dependency; imported here to keep `import edgeship` light

    try:
        client = docker.from_env(timeout=600)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def _is_debian_like() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def _install_docker_io() -> None:
    print("edgeship: installing docker.io from the distribution archive", flush=True)
    apt_install("docker.io")


def _start_dockerd() -> None:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    print(f"edgeship: starting {dockerd} (log: {DOCKERD_LOG})", flush=True)
    with open(DOCKERD_LOG, "ab") as log:
        # A new session so the daemon outlives this process and the invoke run that started it.
        subprocess.Popen([dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)


def ensure_engine():
    """Return a docker SDK client for a running engine, installing/starting one if allowed."""
    client = _ping()
    if client is not None:
        return client
    if os.geteuid() != 0 or not _is_debian_like():
        raise EdgeshipError(
            "no Docker engine answers on the default socket; install and start one "
            "(Debian/Ubuntu: `apt-get install docker.io && dockerd &`, others: see docs.docker.com/engine/install) "
            "or run edgeship as root on Debian/Ubuntu so it can do that itself"
        )
    if shutil.which("dockerd") is None and not Path("/usr/sbin/dockerd").exists():
        _install_docker_io()
    _start_dockerd()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        client = _ping()
        if client is not None:
            return client
        time.sleep(1)
    raise EdgeshipError(f"dockerd did not answer within {START_TIMEOUT_S} s; see {DOCKERD_LOG} for why")
