"""pgstore's rewrites of store.py's SQLite SQL for PostgreSQL (the statements themselves run
against a real server in tests/container/report/test_postgres_store.py)."""

from __future__ import annotations

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import pgstore, store


def test_placeholders_and_percent():
    assert pgstore.translate("SELECT run_id FROM runs WHERE run_id < ? AND note LIKE '5%'") == \
        "SELECT run_id FROM runs WHERE run_id < %s AND note LIKE '5%%'"


def test_insert_or_replace_is_an_upsert_on_the_primary_key():
    sql = pgstore.translate("INSERT OR REPLACE INTO boards (run_id, board, arch) VALUES (?, ?, ?)")
    assert sql == ("INSERT INTO boards (run_id, board, arch) VALUES (%s, %s, %s) ON CONFLICT ON CONSTRAINT boards_pkey "
                   "DO UPDATE SET run_id = excluded.run_id, board = excluded.board, arch = excluded.arch")


def test_begin_immediate():
    assert pgstore.translate("BEGIN IMMEDIATE") == "BEGIN"


def test_schema_has_eight_byte_types_and_a_rowid_on_every_table():
    statements = [pgstore.translate_schema(s) for _, script in store.MIGRATIONS for s in store._statements(script)]
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    assert len(creates) == 7 and all("rowid BIGSERIAL NOT NULL," in s for s in creates)
    text = "\n".join(statements)
    assert " REAL" not in text and " INTEGER" not in text
    assert "mean_ms DOUBLE PRECISION" in text and "size_bytes BIGINT" in text


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://h:5432/db", "postgresql:///db?host=/run/postgresql",
                                 "postgresql://h/?dbname=db"])
def test_good_urls(url):
    assert pgstore.check_url(url) == url and pgstore.is_url(url)


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://h", "postgresql://h:port/db", "results/edgeship.db"])
def test_bad_urls(url):
    with pytest.raises(EdgeshipError, match=r"--store '.*' is not a (PostgreSQL )?URL"):
        pgstore.check_url(url)


def test_values_as_sqlite_stores_them():
    assert pgstore._value(True) == 1 and pgstore._value("a\x00b") == "a\ufffdb" and pgstore._value(1.5) == 1.5
