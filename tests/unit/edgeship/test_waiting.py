"""Every program the controller runs has a bound, and a hang past it is one line naming what was slow."""

from __future__ import annotations

import sys
import time

import pytest

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
