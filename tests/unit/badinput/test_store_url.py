"""Bad-input corpus, family `report`: the results store named by `--store` or by the conversions
file's `[project] store` (edgeship/report/pgstore.py). Each is one line naming the value and the
fix, a non-zero exit, no traceback, and no password echoed; none needs a PostgreSQL server (the
tests that talk to one are in tests/container/report/test_postgres_store.py)."""

from __future__ import annotations

import os
import sys

import pytest

from edgeship.report import pgstore
from tests.support.badinput import REPO_ROOT, assert_one_clean_line, invoke_cli, run_bounded

PREFIX = "edgeship: error: "
NOWHERE = "postgresql://edgeship:hunter2@/results?host=/nonexistent-socket-dir"  # no server: fails at once, no network

CLI = [
    ("--store of another database", ["report", "--store", "mysql://db.example/results"],
     r"--store 'mysql://db\.example/results' is not a PostgreSQL URL"),
    ("--store without a database", ["report", "--store", "postgresql://db.example"], r"is not a PostgreSQL URL with a database name"),
    ("--store a file path", ["compare", "--store", "/var/lib/results.db"], r"--store '/var/lib/results\.db' is not a PostgreSQL URL"),
    ("--store with a bad port", ["report", "--store", "postgresql://db.example:99999x/r"], r"is not a (PostgreSQL )?URL"),
    ("--store server unreachable", ["report", "--store", NOWHERE], r"cannot reach the PostgreSQL store postgresql://edgeship:\*\*\*@/results"),
]
FILES = [
    ("[project] store not a string", "[project]\nstore = 5\n", r"edgeship\.toml: \[project\]: store is int, not a string"),
    ("[project] store of another database", '[project]\nstore = "sqlite:///results.db"\n',
     r"edgeship\.toml: \[project\] store 'sqlite:///results\.db' is not a PostgreSQL URL"),
    ("conversions file not TOML", "[project\nstore = \n", r"edgeship\.toml cannot be read for its \[project\] store \(TOMLDecodeError\)"),
]
KINDS = [("report", kind) for kind, _, _ in CLI] + [("report", kind) for kind, _, _ in FILES] + [("report", "--store without the driver")]


@pytest.mark.parametrize("kind,args,pattern", CLI, ids=[kind for kind, _, _ in CLI])
def test_store_urls(kind, args, pattern, tmp_path):
    result = invoke_cli(*args, "--results", str(tmp_path))
    assert_one_clean_line(result, PREFIX, pattern)
    assert "hunter2" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # no SQLite store made instead


@pytest.mark.parametrize("kind,text,pattern", FILES, ids=[kind for kind, _, _ in FILES])
def test_conversions_file_store(kind, text, pattern, tmp_path):
    (tmp_path / "edgeship.toml").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = invoke_cli("-r", str(REPO_ROOT), "report", "--results", str(tmp_path / "results"), cwd=tmp_path, env=env)
    assert_one_clean_line(result, PREFIX, pattern)


def test_missing_driver_names_the_extra(tmp_path):
    """Without psycopg (blocked in sys.modules, as on a controller installed without the extra),
    a postgresql:// store is one line naming the pip extra; SQLite needs no driver."""
    code = ("import sys; sys.modules['psycopg'] = None; from invoke.main import program; "
            f"program.run(['invoke', '-r', {str(REPO_ROOT)!r}, 'report', '--results', {str(tmp_path)!r}, '--store', {NOWHERE!r}])")
    result = run_bounded([sys.executable, "-c", code], cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, bound_s=120)
    assert_one_clean_line(result, PREFIX, r"needs the psycopg driver: pip install 'edgeship\[postgresql\]'$")


def test_messages_never_show_the_password():
    assert pgstore.redact("postgresql://u:s3cret@db:5432/r") == "postgresql://u:***@db:5432/r"
    assert pgstore.redact("postgresql://u@db/r") == "postgresql://u@db/r"
    # libpq takes the password as a query parameter too (found in review)
    assert pgstore.redact("postgresql://u@db/r?sslmode=require&password=s3cret") == "postgresql://u@db/r?sslmode=require&password=***"
    assert "s3cret" not in pgstore.redact("postgresql://u:s3cret@db/r?PASSWORD=s3cret")
