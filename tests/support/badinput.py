"""The bad-input corpus's shared rule: a command given a bad input ends, within its bound, with
exactly one line on stderr that starts with the tool's prefix, a non-zero exit, no traceback.

Each corpus module lists its cases in a module-level `KINDS` list of (family, kind) pairs;
tests/unit/test_bad_input_corpus.py counts them across modules (the issue asks for 120 kinds)
and checks that the README names every family.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeship.paths import REPO_ROOT

BOUND_S = 120  # no bad input may take longer than this to be refused


def run_bounded(argv: list[str], cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """Run argv with its output captured; a run past bound_s fails the test as a hang."""
    full_env = {**os.environ, **(env or {})}
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=bound_s, env=full_env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(argv)} hung: still running after {bound_s} s") from None


def runtime_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """`edgeship-runtime ARGS` as a board runs it."""
    return run_bounded([sys.executable, "-m", "edgeship_runtime.cli", *args], cwd=cwd, env=env, bound_s=bound_s)


def invoke_cli(*args: str, cwd: Path = REPO_ROOT, env: dict | None = None, bound_s: float = BOUND_S) -> subprocess.CompletedProcess:
    """`invoke TASK ARGS` as a user runs it."""
    return run_bounded([sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, bound_s=bound_s)


def assert_one_clean_line(result: subprocess.CompletedProcess, prefix: str, pattern: str | None = None) -> str:
    """The rule every bad input must meet; returns the line."""
    import re

    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode != 0, f"exit 0 on bad input; stdout: {result.stdout[-1000:]}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines[-20:])
    assert lines[0].startswith(prefix), lines[0]
    if pattern:
        assert re.search(pattern, lines[0]), lines[0]
    return lines[0]
