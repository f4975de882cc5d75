"""`edgeship-runtime profile` (family `runtime profile`) and `bench --profile` (family `runtime
bench`) on bad input: run and row counts out of range or not whole numbers, bad output paths,
a damaged artifact. Each is one clean line and exit 2 before anything runs; nothing is written."""

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

BAD = {  # kind -> (command, the arguments after `COMMAND ARTIFACT`, what the line says); {d} is the test's folder
    "--runs 0": ("profile", ["--runs", "0"], "--runs 0 must be from 1 to 1000"),
    "--runs past the trace bound": ("profile", ["--runs", "1001"], "--runs 1001 must be from 1 to 1000"),
    "--runs a float": ("profile", ["--runs", "2.5"], "--runs"),
    "--runs nan": ("profile", ["--runs", "nan"], "--runs"),
    "--runs negative": ("profile", ["--runs", "-3"], "--runs"),
    "--top 0": ("profile", ["--top", "0"], "--top 0 must be from 1 to 100"),
    "--top too many": ("profile", ["--top", "101"], "--top 101 must be from 1 to 100"),
    "--threads 0": ("profile", ["--threads", "0"], "--threads"),
    "--output in a missing folder": ("profile", ["--output", "{d}/missing/profile.json"], "--output"),
    "--output is a symlink": ("profile", ["--output", "{d}/link.json"], "--output"),
    "--backend-option not KEY=VALUE": ("profile", ["--backend-option", "=x"], "--backend-option"),
    "damaged artifact (manifest a list)": ("profile", ["--artifact-override", "list"], "manifest"),
    "truncated model": ("profile", ["--artifact-override", "truncated"], None),
    "bench --profile 0": ("bench", ["--profile", "0"], "--profile 0 must be from 1 to 1000"),
    "bench --profile past the trace bound": ("bench", ["--profile", "5000"], "--profile 5000 must be from 1 to 1000"),
    "bench --profile a word": ("bench", ["--profile", "all"], "--profile"),
}

KINDS = [("runtime bench" if command == "bench" else "runtime profile", kind) for kind, (command, _, _) in BAD.items()]

QUICK_BENCH = ["--warmup-runs", "0", "--warmup-s", "0", "--min-runs", "1", "--min-s", "0"]


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_profile_input_is_one_line_and_writes_nothing(tmp_path, good, kind):
    command, args, pattern = BAD[kind]
    (tmp_path / "canary.txt").write_text("canary")
    (tmp_path / "link.json").symlink_to(tmp_path / "canary.txt")
    args = [arg.format(d=tmp_path) for arg in args]
    artifact = str(good)
    if args[:1] == ["--artifact-override"]:
        artifact, args = str(damaged_artifact(good, tmp_path, args[1])), []
    before = sorted(os.listdir(tmp_path))
    result = runtime_cli(command, artifact, *(QUICK_BENCH if command == "bench" else []), *args)
    assert_one_clean_line(result, PREFIX, pattern)
    assert result.returncode == 2 and not result.stdout.strip()
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "canary.txt").read_text() == "canary"
