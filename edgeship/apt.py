"""Debian packages the controller installs for itself when they are missing (as root): the
Docker engine, debootstrap, qemu-user for emulated boards, headless Chromium."""

from __future__ import annotations

import os
import subprocess


def apt_install(*packages: str) -> None:
    """`apt-get update` then a quiet, non-interactive `apt-get install -y` of the packages."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
