"""One way to wait for something on this machine: poll until it is there or a deadline passes."""

from __future__ import annotations

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
