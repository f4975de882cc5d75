"""A toolchain container's memory and process limits, from the settings (here, not in container.py,
so the host's data checks can read them without importing the container code, which imports the
request it runs)."""

from __future__ import annotations

import os
import re

from edgeship.errors import EdgeshipError

MEMORY_SETTING, DEFAULT_MEMORY = "EDGESHIP_CONTAINER_MEMORY", "16g"
PIDS_SETTING, DEFAULT_PIDS = "EDGESHIP_CONTAINER_PIDS", 4096


def _setting(name: str, default: str, pattern: str, example: str) -> str:
    value = os.environ.get(name, "").strip() or default
    if not re.fullmatch(pattern, value, re.IGNORECASE):
        raise EdgeshipError(f"{name}={value!r} is not a valid setting; give e.g. {name}={example}, or unset it for {default}")
    return value


def limits() -> dict:
    """The memory and process limits of a toolchain container, from the settings."""
    memory = _setting(MEMORY_SETTING, DEFAULT_MEMORY, r"[1-9][0-9]*[kmg]?", "24g (bytes, or a number with k, m or g)")
    pids = int(_setting(PIDS_SETTING, str(DEFAULT_PIDS), r"[1-9][0-9]*", "8192"))
    return {"mem_limit": memory.lower(), "pids_limit": pids}
