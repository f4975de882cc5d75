"""The Docker engine edgeship talks to: the default socket's, brought up by `./dev setup`."""

from __future__ import annotations

from edgeship.errors import EdgeshipError
from edgeship.host import docker_client


def ensure_engine():
    """A docker SDK client for the running engine, or one line saying how to get one."""
    client = docker_client()
    if client is None:
        raise EdgeshipError("no Docker engine answers on the default socket; run `./dev setup` as root (installs docker.io and starts "
                            "dockerd on Debian/Ubuntu), or install and start one yourself (docs.docker.com/engine/install)")
    return client
