"""The results store in PostgreSQL (edgeship/report/pgstore.py) against a real server the tests
start: Debian's postgresql, initdb + pg_ctl in a temporary folder, listening on a Unix socket
only, run as the `postgres` user when the tests run as root (the server refuses root).

Acceptance (issue 31): three shards import their results into one PostgreSQL store at once, and
the report from it equals the report from the same runs in SQLite."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship.report.publish import write_report
from tests.support.badinput import assert_one_clean_line, invoke_cli
from tests.unit.edgeship.report.runs import make_run

REPO = Path(__file__).resolve().parents[3]
INVOKE = str(Path(sys.executable).with_name("invoke"))
SERVER_START_S = 60  # initdb + start of an empty cluster takes a few seconds on 2 busy cores
IMPORT_TIMEOUT_S = 120


def _server_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} took over {timeout:g} s")
    assert done.returncode == 0, f"{what} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def server():
    """(socket folder) of a PostgreSQL server that lives for this module's tests."""
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install -y postgresql (.ci/run does)")
    pytest.importorskip("psycopg", reason="the psycopg driver is missing: pip install -e '.[postgresql]' (./dev setup does)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: the server refuses to run as root")
    folder = Path(tempfile.mkdtemp(prefix="edgeship-pg-"))  # /tmp directly: the socket path must stay short
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "edgeship", "--no-sync", "-E", "UTF8"], "initdb", SERVER_START_S)
    options = f"-c listen_addresses='' -c unix_socket_directories={folder} -c fsync=off -c max_connections=30"
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", str(SERVER_START_S), "start"],
         "pg_ctl start", SERVER_START_S + 10)
    try:
        yield folder
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]),
                       capture_output=True, timeout=45)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(server):
    """A new, empty database on the server; the store is back on SQLite after the test."""
    import psycopg

    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"postgresql://edgeship@/postgres?host={server}", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://edgeship@/{name}?host={server}"
    store.use(None)


RUNS = ("20261201T100000Z", "20261202T100000Z", "20261203T100000Z")


def _shards(tmp_path: Path) -> tuple[list[Path], Path]:
    """Three shard results folders with one run each, and one SQLite results folder with all three."""
    artifacts, sqlite = tmp_path / "artifacts", tmp_path / "sqlite"
    shards = []
    for index, run_id in enumerate(RUNS):
        shard = tmp_path / f"shard{index}"
        make_run(shard, artifacts, run_id, seed=index, slower={("sim-rpi", "digits"): 1.0 + index})
        make_run(sqlite, artifacts, run_id, seed=index, slower={("sim-rpi", "digits"): 1.0 + index})
        shards.append(shard)
    return shards, sqlite


def _stored(results: Path, run_id: str) -> dict:
    record = store.run_record(results, run_id)
    record.pop("imported_at")
    return {"run": record, "comparison": store.comparison_rows(results, run_id),
            **{table: store.table_rows(results, table, run_id) for table in store.RECORD_TABLES}}


def test_three_shards_import_concurrently_and_report_as_sqlite_does(tmp_path, pg_url):
    shards, sqlite = _shards(tmp_path)
    # three runners at once, each importing its share into a database none of them has migrated yet
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    jobs = [subprocess.Popen([INVOKE, "report", "--results", str(shard), "--store", pg_url], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for shard in shards]
    for job in jobs:
        try:
            out, err = job.communicate(timeout=IMPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in jobs:
                other.kill()
            pytest.fail(f"an `invoke report --store` import took over {IMPORT_TIMEOUT_S} s")
        assert job.returncode == 0, err[-3000:]
    sqlite_reports = {run_id: write_report(sqlite, run_id)[1].read_text() for run_id in RUNS}

    store.use(pg_url)
    assert store.run_ids(tmp_path / "elsewhere") == list(RUNS)  # one store, whichever results folder
    for shard, run_id in zip(shards, RUNS):
        pg_report = (shard / run_id / "report.md").read_text()
        assert pg_report.replace(str(shard), "R") == sqlite_reports[run_id].replace(str(sqlite), "R")
        pg_rows = _stored(shard, run_id)
        store.use(None)
        sqlite_rows = _stored(sqlite, run_id)
        store.use(pg_url)
        assert pg_rows == sqlite_rows
        assert pg_rows["benches"] and pg_rows["conversions"] and pg_rows["comparison"]
    # the runs differ where the shards planted it: the store did not mix them up
    speeds = [next(r["mean_ms"] for r in _stored(shard, run_id)["benches"] if (r["board"], r["model"]) == ("sim-rpi", "digits"))
              for shard, run_id in zip(shards, RUNS)]
    assert speeds[0] < speeds[1] < speeds[2]


def test_reimport_is_idempotent_and_tags_survive(tmp_path, pg_url):
    shards, _ = _shards(tmp_path)
    store.use(pg_url)
    first = store.import_run(shards[0], shards[0] / RUNS[0])
    store.set_tag(shards[0], "baseline", RUNS[0])
    assert store.import_run(shards[0], shards[0] / RUNS[0])["unchanged"]
    again = store.import_run(shards[0], shards[0] / RUNS[0], force=True)
    assert again["rows"] == first["rows"] and not again["unchanged"]
    assert store.resolve_run(tmp_path, "baseline") == RUNS[0]
    assert len(store.table_rows(tmp_path, "benches", RUNS[0])) == first["rows"]["benches"]


def test_compare_reads_postgresql(tmp_path, pg_url):
    artifacts, results = tmp_path / "artifacts", tmp_path / "results"
    make_run(results, artifacts, RUNS[0])
    make_run(results, artifacts, RUNS[1], seed=1, slower={("sim-rpi", "digits"): 1.5})
    for run_id in RUNS[:2]:
        store.use(pg_url)
        store.import_run(results, results / run_id)
    store.use(None)
    assert not store.db_path(results).exists()  # nothing went to SQLite
    result = invoke_cli("compare", "--results", str(results), "--store", pg_url)
    assert result.returncode == 1, result.stderr  # the planted slowdown is a regression, read from PostgreSQL
    assert "digits" in result.stdout


def test_migrations_once_and_a_newer_schema_refused(pg_url):
    import psycopg

    store.use(pg_url)
    assert store.run_ids(Path("unused")) == []
    assert store.run_ids(Path("unused")) == []
    with psycopg.connect(pg_url, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM edgeship_schema").fetchall() == [(store.SCHEMA_VERSION,)]
        kinds = dict(raw.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'benches'").fetchall())
        assert kinds["mean_ms"] == "double precision" and kinds["runs"] == "bigint"
        raw.execute("UPDATE edgeship_schema SET version = version + 1")
    with pytest.raises(EdgeshipError, match=r"schema version \d+, newer than this edgeship's"):
        store.run_ids(Path("unused"))


def test_bad_store_urls_are_one_line(server, tmp_path):
    assert_one_clean_line(invoke_cli("report", "--store", "mysql://db/results"), "edgeship: error:", r"not a PostgreSQL URL")
    # a server that is not there: one line naming the URL, without its password (a results folder of
    # its own: a clean clone has none, and the report checks it before the store)
    result = invoke_cli("report", "--results", str(tmp_path), "--store", f"postgresql://edgeship:s3cret@/nowhere?host={server}/missing")
    assert_one_clean_line(result, "edgeship: error:", r"cannot reach the PostgreSQL store")
    assert "s3cret" not in result.stderr


def test_conversions_file_names_the_store(tmp_path, pg_url):
    """[project] store = "postgresql://..." in edgeship.toml: `invoke report` run beside it uses it;
    a store that is not a PostgreSQL URL is one line naming the file."""
    artifacts, results = tmp_path / "artifacts", tmp_path / "results"
    make_run(results, artifacts, RUNS[0])
    (tmp_path / "edgeship.toml").write_text(f'[project]\nstore = "{pg_url}"\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = invoke_cli("-r", str(REPO), "report", "--results", str(results), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert not store.db_path(results).exists()
    store.use(pg_url)
    assert store.run_ids(results) == [RUNS[0]]
    (tmp_path / "edgeship.toml").write_text('[project]\nstore = "sqlite:///results.db"\n')
    bad = invoke_cli("-r", str(REPO), "report", "--results", str(results), cwd=tmp_path, env=env)
    assert_one_clean_line(bad, "edgeship: error:", r"edgeship\.toml: \[project\] store 'sqlite:///results\.db' is not a PostgreSQL URL")


def test_a_nul_in_a_board_file_does_not_fail_the_import(tmp_path, pg_url):
    """PostgreSQL's text refuses NUL, SQLite's does not: a board's file carrying one (untrusted)
    imports, the NUL shown as U+FFFD, instead of failing the whole run's import."""
    import json

    artifacts, results = tmp_path / "artifacts", tmp_path / "results"
    folder = make_run(results, artifacts, RUNS[0])
    board = folder / "sim-rpi.json"
    document = json.loads(board.read_text())
    document["release_id"] = "r1\x00evil"
    board.write_text(json.dumps(document))
    store.use(pg_url)
    store.import_run(results, folder)
    rows = {row["board"]: row for row in store.table_rows(results, "boards", RUNS[0])}
    assert rows["sim-rpi"]["release_id"] == "r1\ufffdevil"


def test_a_store_held_too_long_is_one_line(pg_url):
    """Another process holding the store past the lock timeout: one line, not a hang."""
    import psycopg

    from edgeship.report import pgstore, store

    schema = pgstore.Schema(store.MIGRATIONS, store.SCHEMA_VERSION, store._statements)
    with psycopg.connect(pg_url) as holder:  # a transaction left open, holding the migration lock
        holder.execute(f"SELECT pg_advisory_xact_lock({pgstore.MIGRATION_LOCK})")
        with pytest.raises(EdgeshipError, match=r"another import held the store too long \(.*lock timeout"), \
                pgstore.connect(pg_url, lock_timeout_s=1.0, schema=schema):
            pass
