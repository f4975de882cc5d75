"""The main job reads where its local demo serves from the demo's "serving" line on stderr: that
read is bounded, so a demo that never says where it serves is one error naming what was slow, not a
hang, and a backend's own notices before that line (LiteRT's XNNPACK one) are passed over."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report.demo_table import line_with


def _process(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)


def test_a_process_that_never_writes_is_given_up_on_within_the_bound():
    process = _process("import sys, time; sys.stderr.write('loading'); sys.stderr.flush(); time.sleep(60)")
    started = time.monotonic()
    try:
        with pytest.raises(EdgeshipError, match=r"the demo's address did not come within 1\.5 s \(it had written 'loading'\); run the command"):
            line_with(process.stderr.fileno(), b"serving http://", 1.5, "the demo's address")  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
    assert time.monotonic() - started < 10


def test_the_serving_line_comes_back_as_soon_as_it_is_written_after_other_notices_and_an_exit_ends_the_wait():
    process = _process("import sys, time; sys.stderr.write('INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n'); sys.stderr.flush(); "
                       "time.sleep(0.5); sys.stderr.write('serving http://127.0.0.1:8080/ (viewer)\\nmore\\n'); sys.stderr.flush(); time.sleep(60)")
    try:
        assert line_with(process.stderr.fileno(), b"serving http://", 30, "x") == "serving http://127.0.0.1:8080/ (viewer)"  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
    quiet = _process("import sys; sys.stderr.write('edgeship-runtime: error: no such artifact')")
    assert line_with(quiet.stderr.fileno(), b"serving http://", 30, "x") == "edgeship-runtime: error: no such artifact"  # type: ignore[union-attr]
    quiet.wait()


def test_the_demo_table_reads_each_boards_stats_as_untrusted(tmp_path):
    from edgeship.report.demo_table import demo_table

    for host, content in (("sim-a", b"\xff\xfe"), ("sim-b", b'{"backend": "x"}'), ("sim-c", b"[" * 100_000)):
        (tmp_path / "demo" / host).mkdir(parents=True)
        (tmp_path / "demo" / host / "stats.json").write_bytes(content)
    rows = demo_table(tmp_path, ["sim-a", "sim-b", "sim-c", "sim-d"]).splitlines()[2:]
    assert rows[0].startswith("| sim-a |") and "stats not read: not whole JSON (UnicodeDecodeError" in rows[0]
    assert rows[1] == "| sim-b | - | - | - | - | - | - | - | - | - | stats not read (KeyError) |"
    assert "JSON nested deeper than a result file is" in rows[2] and rows[3].endswith("no stats came home |")
