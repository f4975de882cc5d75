"""Every program the controller runs has a bound, and a hang past it is one line naming what was slow."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeship import waiting
from edgeship.errors import EdgeshipError
from edgeship.waiting import run_bounded


def test_a_program_past_its_bound_is_stopped_with_one_line_naming_it():
    began = time.monotonic()
    with pytest.raises(EdgeshipError, match=r"^pip download of the wheelhouse of onnx did not finish within 0\.5 s and was stopped "
                                            r"\(.*python.*\); check the network and the mirror or index it reads, then run again$"):
        run_bounded([sys.executable, "-c", "import time; time.sleep(30)"], 0.5, "pip download of the wheelhouse of onnx")
    assert time.monotonic() - began < 10


def test_a_program_within_its_bound_runs_as_subprocess_run_does():
    result = run_bounded([sys.executable, "-c", "print('ok')"], 60, "a quick program", capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "ok\n"


# The program starts a child that notes its pid and sleeps; `trap '' TERM` makes the child deaf to TERM.
FAMILY = 'sh -c "{trap}echo \\$\\$ > {pid_file}; exec sleep 60" & wait'


def _family(tmp_path, trap: str = "") -> tuple[list[str], Path]:
    pid_file = tmp_path / "grandchild.pid"
    return ["sh", "-c", FAMILY.format(trap=trap, pid_file=pid_file)], pid_file


def _grandchild(pid_file: Path) -> int:
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the grandchild never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


@pytest.mark.parametrize("trap", ["", "trap '' TERM; "], ids=["stops-on-term", "ignores-term"])
def test_a_program_past_its_bound_is_stopped_with_its_children(tmp_path, monkeypatch, trap):
    """subprocess.run's timeout killed the program alone: its children (ansible-playbook's forks and
    ssh sessions, pip's builds) ran on. A child deaf to TERM is killed after the grace."""
    monkeypatch.setattr(waiting, "GRACE_S", 0.5)
    command, pid_file = _family(tmp_path, trap)
    with pytest.raises(EdgeshipError, match=r"^a family of processes did not finish within 1 s and was stopped \(sh\); "):
        run_bounded(command, 1, "a family of processes")
    assert gone(_grandchild(pid_file))


def test_an_interrupt_while_waiting_stops_the_program_and_its_children(tmp_path):
    """In its own session the program no longer hears the terminal's Ctrl-C, so the interrupt is passed on."""
    command, pid_file = _family(tmp_path)
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            run_bounded(command, 60, "a family of processes")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert gone(_grandchild(pid_file))


def test_a_program_reads_its_input_and_its_check_fails_as_subprocess_run_does():
    result = run_bounded([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], 60, "an echo", input="hi",
                         capture_output=True, text=True)
    assert result.stdout == "HI\n"
    with pytest.raises(subprocess.CalledProcessError):
        run_bounded([sys.executable, "-c", "raise SystemExit(3)"], 60, "a failing program", check=True)


def gone(pid: int, seconds: float = 2) -> bool:
    """Whether pid has ended within seconds (a signal takes a moment to land; a zombie is gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
