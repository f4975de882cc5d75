"""Debian base images made from Debian's archive with debootstrap, for machines with no registry.

`docker import` of a debootstrapped root file system gives the same kind of base a registry
would (python3 + venv), labelled with how it was made. Air-gapped users need exactly this.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone

from edgeship.errors import EdgeshipError
from edgeship.host import require
from edgeship.waiting import run_bounded

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
LABEL_PREFIX = "io.edgeship.base"
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}
DEBOOTSTRAP_TIMEOUT_S = 1800  # about 40 MB of packages from the mirror; a few minutes on a slow link
IMPORT_TIMEOUT_S = 1800  # a 300 MB root file system into the engine


def base_tag(arch: str = "amd64", packages: tuple[str, ...] = PACKAGES) -> str:
    suffix = "" if packages == PACKAGES else "-" + "-".join(p for p in packages if p not in PACKAGES)
    return f"edgeship/base:{SUITE}-{arch}{suffix}"


def host_arch() -> str:
    return _DEB_ARCH.get(platform.machine(), platform.machine())


def _image_exists(client, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(client, arch: str | None = None, packages: tuple[str, ...] = PACKAGES, rebuild: bool = False) -> str:
    """Return the tag of a Debian base image, bootstrapping it when it is not cached yet.

    The mirror is debootstrap's default unless EDGESHIP_DEBIAN_MIRROR names one (a local
    mirror for air-gapped sites).
    """
    arch = arch or host_arch()
    tag = base_tag(arch, packages)
    if not rebuild and _image_exists(client, tag):
        return tag
    if os.geteuid() != 0:
        raise EdgeshipError(f"bootstrapping {tag} needs root (debootstrap); run as root or set BASE_IMAGE to an existing image")
    require("debootstrap")
    mirror = os.environ.get("EDGESHIP_DEBIAN_MIRROR", "")
    workdir = tempfile.mkdtemp(prefix="edgeship-rootfs-", dir="/var/tmp")
    rootfs = os.path.join(workdir, "rootfs")
    cmd = ["debootstrap", f"--arch={arch}", f"--variant={VARIANT}", "--include=" + ",".join(packages), SUITE, rootfs]
    if mirror:
        cmd.append(mirror)
    print("edgeship: " + " ".join(cmd), flush=True)
    started = time.monotonic()
    try:
        log_path = os.path.join(workdir, "debootstrap.log")
        with open(log_path, "w") as log:
            result = run_bounded(cmd, DEBOOTSTRAP_TIMEOUT_S, f"debootstrap of {SUITE}/{arch} (log: {log_path})",
                                 stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            with open(log_path) as log:
                tail = log.read()[-2000:]
            raise EdgeshipError(f"debootstrap of {SUITE}/{arch} failed (exit {result.returncode}); "
                                f"is the Debian archive reachable? last output: {tail.strip().splitlines()[-1] if tail.strip() else ''}")
        # Package caches are not part of a base image.
        shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
        shutil.rmtree(os.path.join(rootfs, "var/lib/apt/lists"), ignore_errors=True)
        os.makedirs(os.path.join(rootfs, "var/cache/apt/archives/partial"), exist_ok=True)
        os.makedirs(os.path.join(rootfs, "var/lib/apt/lists/partial"), exist_ok=True)
        debootstrap_version = run_bounded(["dpkg-query", "-W", "-f=${Version}", "debootstrap"], 60, "dpkg-query of debootstrap's version",
                                          "is dpkg's database locked by a stuck apt run?", capture_output=True, text=True).stdout.strip()
        labels = {
            f"{LABEL_PREFIX}.suite": SUITE,
            f"{LABEL_PREFIX}.arch": arch,
            f"{LABEL_PREFIX}.variant": VARIANT,
            f"{LABEL_PREFIX}.include": ",".join(packages),
            f"{LABEL_PREFIX}.mirror": mirror or "debootstrap default",
            f"{LABEL_PREFIX}.debootstrap-version": debootstrap_version or "unknown",
            "org.opencontainers.image.created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "org.opencontainers.image.base.name": f"debootstrap:{SUITE}/{VARIANT}",
        }
        changes = []
        for key, value in labels.items():
            changes += ["--change", f'LABEL {key}="{value}"']
        changes += ["--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["/bin/bash"]']
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = run_bounded(["docker", "import", *changes, "-", tag], IMPORT_TIMEOUT_S, f"docker import of {rootfs} as {tag}",
                                   "see the Docker engine's log (is its disk full?)", stdin=tar.stdout, capture_output=True, text=True)
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            try:  # done once docker import read it all; stopped by the closed pipe when the import was stopped
                tar.wait(timeout=60)
            except subprocess.TimeoutExpired:
                tar.kill()
                tar.wait()
        if tar.returncode != 0 or imported.returncode != 0:
            raise EdgeshipError(f"docker import of {rootfs} as {tag} failed: {imported.stderr.strip()}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"edgeship: base image {tag} made in {time.monotonic() - started:.0f} s", flush=True)
    return tag
