"""What the playbook tests ask of processes a stand-in runtime started: are they gone?"""

from __future__ import annotations

import time


def alive_after(pids: list[int], seconds: float) -> list[int]:
    """Which of pids still run once seconds have passed (sooner when none does; a zombie is gone)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if running(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
