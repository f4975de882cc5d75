"""One way to wait for something on this machine: poll until it is there or a deadline passes; and
one way to run a program with a bound."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from edgeship.errors import EdgeshipError

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout_s: float, failure: str | Callable[[], str], interval_s: float = 1.0) -> T:
    """Call `probe` until it returns something truthy (returned) or `timeout_s` passes; then an
    EdgeshipError with `failure` (a message, or a function making one from the last state).
    A probe may raise EdgeshipError itself to stop waiting at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise EdgeshipError(failure() if callable(failure) else failure)
        time.sleep(interval_s)


NETWORK_FIX = "check the network and the mirror or index it reads, then run again"


def run_bounded(command: list[str], timeout_s: float, what: str, fix: str = NETWORK_FIX, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(command, **kwargs) stopped after `timeout_s`: then EdgeshipError naming what
    was slow, the bound and `fix`, instead of a controller that waits forever on a stuck mirror."""
    try:
        return subprocess.run(command, timeout=timeout_s, **kwargs)
    except subprocess.TimeoutExpired:
        raise EdgeshipError(f"{what} did not finish within {_duration(timeout_s)} and was stopped ({command[0]}); {fix}") from None


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} s"
