"""One way to wait for something on this machine: poll until it is there or a deadline passes; and
one way to run a program with a bound."""

from __future__ import annotations

import os
import signal
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
    was slow, the bound and `fix`, instead of a controller that waits forever on a stuck mirror.

    The program runs in a session of its own and the bound stops its whole process group (TERM,
    then KILL after a grace): subprocess.run's own timeout killed the program alone, and
    ansible-playbook's forks and ssh sessions, or pip's and uv's children, ran on. Being in its
    own session, the program no longer hears the terminal's Ctrl-C: an interrupt (or any other
    exception) here is passed on to its group the same way. It has no controlling terminal
    either, so nothing it runs can prompt on /dev/tty (an unknown ssh host key fails at once)."""
    check = kwargs.pop("check", False)
    stdin_data = kwargs.pop("input", None)
    if stdin_data is not None:
        kwargs["stdin"] = subprocess.PIPE
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with subprocess.Popen(command, start_new_session=True, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(stdin_data, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(process, signal.SIGTERM)
            raise EdgeshipError(f"{what} did not finish within {_duration(timeout_s)} and was stopped ({command[0]}); {fix}") from None
        except BaseException:
            _stop_group(process, signal.SIGINT)
            raise
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


GRACE_S = 5.0


def _stop_group(process: subprocess.Popen, first: signal.Signals) -> None:
    """Send `first` to the program's process group, give it GRACE_S to end, then KILL whatever of
    the group is left (a child that ignored `first`, or outlived the program) and reap the program."""
    _signal_group(process, first)
    try:
        process.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen, sent: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sent)
    except ProcessLookupError:
        pass  # nothing of the group is left


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} s"
