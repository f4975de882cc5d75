"""`edgeship-runtime bench` on bad input (family `runtime bench`): numbers that are not finite, out
of range or would never end, bad lists, bad output paths, a damaged artifact. Each is one clean
line and a non-zero exit before anything is measured; nothing is written."""

from __future__ import annotations

import os

import pytest

from tests.support.badinput import (
    assert_one_clean_line,
    damaged_artifact,
    good_artifact,  # noqa: F401 -- the `good` fixture the tests take
    runtime_cli,
)

PREFIX = "edgeship-runtime: error: "

BAD = {  # kind -> the arguments after `bench ARTIFACT`; {d} is the test's folder
    "--warmup-runs negative": ["--warmup-runs", "-1"],
    "--warmup-runs a float": ["--warmup-runs", "2.5"],
    "--warmup-s nan": ["--warmup-s", "nan"],
    "--warmup-s negative": ["--warmup-s", "-1"],
    "--warmup-s over a day": ["--warmup-s", "1e6"],
    "--min-runs 0": ["--min-runs", "0"],
    "--min-runs negative": ["--min-runs", "-20"],
    "--min-s 1e308": ["--min-s", "1e308"],
    "--min-s inf": ["--min-s", "inf"],
    "--min-s not a number": ["--min-s", "two"],
    "--max-s nan": ["--max-s", "nan"],
    "--max-s 0": ["--max-s", "0"],
    "--max-s negative": ["--max-s", "-5"],
    "--max-s=-inf": ["--max-s=-inf"],
    "--batches 0": ["--batches", "0"],
    "--batches words": ["--batches", "a,b"],
    "--batches huge": ["--batches", "1,100000"],
    "--instances 0": ["--instances", "0"],
    "--instances negative": ["--instances", "-2"],
    "--instances too many": ["--instances", "1000"],
    "--threads 0": ["--threads", "0"],
    "--scenario unknown": ["--scenario", "server"],
    "--scenario MLPerf spelling": ["--scenario", "SingleStream"],
    "--scenario empty": ["--scenario", ""],
    "--output in a missing folder": ["--output", "{d}/missing/bench.json"],
    "--output is a symlink": ["--output", "{d}/link.json"],
    "--backend-option not KEY=VALUE": ["--backend-option", "=x"],
    "damaged artifact (manifest a list)": ["--artifact-override", "list"],
    "truncated model": ["--artifact-override", "truncated"],
}

KINDS = [("runtime bench", kind) for kind in BAD]


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_bench_input_is_one_line_and_writes_nothing(tmp_path, good, kind):
    (tmp_path / "canary.txt").write_text("canary")
    (tmp_path / "link.json").symlink_to(tmp_path / "canary.txt")
    args = [arg.format(d=tmp_path) for arg in BAD[kind]]
    artifact = str(good)
    if args[:1] == ["--artifact-override"]:
        artifact, args = str(damaged_artifact(good, tmp_path, args[1])), []
    before = sorted(os.listdir(tmp_path))
    result = runtime_cli("bench", artifact, "--warmup-runs", "0", "--warmup-s", "0", "--min-runs", "1", "--min-s", "0", *args)
    assert_one_clean_line(result, PREFIX)
    assert result.returncode == 2 and not result.stdout.strip()
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "canary.txt").read_text() == "canary"
