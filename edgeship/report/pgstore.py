"""The results store in PostgreSQL: one database that many runners and boards import into, with
the SQLite store's schema and migrations (store.MIGRATIONS, the one migration path).

store.py writes SQLite's SQL; a Connection here runs the same statements on PostgreSQL after a
few mechanical rewrites, so store.py keeps one set of queries:
- placeholders `?` become `%s` (and a literal `%` is doubled);
- `BEGIN IMMEDIATE` is `BEGIN` (PostgreSQL locks rows as they are written, and the run's upsert
  in import_run makes two imports of the same run wait for each other);
- `INSERT OR REPLACE` is an INSERT ... ON CONFLICT ON CONSTRAINT <table>_pkey DO UPDATE;
- in the schema, REAL is DOUBLE PRECISION and INTEGER is BIGINT (SQLite's REAL and INTEGER are
  8 bytes; PostgreSQL's are 4), and each table gets a `rowid BIGSERIAL` column so that
  `ORDER BY rowid` reads rows back in the order they were written, as in SQLite. Rows read back
  leave `rowid` out, so both stores give the same dicts;
- the schema version is kept in a table (`edgeship_schema`) rather than `PRAGMA user_version`,
  and migrations run under a transaction-scoped advisory lock: two runners that open a new
  database at once migrate it once.

psycopg (3) is imported only here, and only when a postgresql:// URL is given: SQLite needs no
driver. It is the optional extra `edgeship[postgresql]`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edgeship.errors import EdgeshipError
from edgeship.store_url import SCHEMES, check_url, is_url, redact  # noqa: F401 (this module's API, kept where callers found it)

CONNECT_TIMEOUT_S = 15  # a server that does not answer in this long is down or unreachable
# One statement of an import is one row; a statement running this long is a server in trouble.
STATEMENT_TIMEOUT_S = 300
# An arbitrary constant naming "edgeship migrates this database" among the server's advisory locks.
MIGRATION_LOCK = 0x6564_6765_7368_6970 & 0x7FFF_FFFF_FFFF_FFFF
DRIVER_MISSING = "the PostgreSQL store needs the psycopg driver: pip install 'edgeship[postgresql]'"


@dataclass(frozen=True)
class Schema:
    """store.py's schema, handed in (store.py imports this module, so this one does not import it):
    its migrations [(number, script)], the current version, and how a script splits into statements."""

    migrations: Sequence[tuple[int, str]]
    version: int
    statements: Callable[[str], list[str]]


def _driver():
    try:
        import psycopg
    except ImportError:
        raise EdgeshipError(DRIVER_MISSING) from None
    return psycopg


_PLACEHOLDER = re.compile(r"\?")
_INSERT_OR_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\) (VALUES \(.*\))\s*$", re.S)


def translate(sql: str) -> str:
    """One statement of store.py's SQLite SQL as PostgreSQL runs it (see the module's docstring)."""
    if sql.strip().upper() == "BEGIN IMMEDIATE":
        return "BEGIN"
    replace = _INSERT_OR_REPLACE.match(sql)
    if replace:
        table, columns, values = replace.groups()
        names = [c.strip() for c in columns.split(",")]
        sql = (f"INSERT INTO {table} ({columns}) {values} ON CONFLICT ON CONSTRAINT {table}_pkey DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in names))
    return _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


def translate_schema(statement: str) -> str:
    """A migration statement with PostgreSQL's 8-byte types, and a rowid on each new table."""
    statement = re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)
    statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    return re.sub(r"^(CREATE TABLE \w+ \()", r"\1\n    rowid BIGSERIAL NOT NULL,", statement)


def _row(row: dict | None) -> dict | None:
    if row is None:
        return None
    row.pop("rowid", None)
    return row


def _value(value: Any) -> Any:
    """A parameter as PostgreSQL takes it: bools as integers, as sqlite3 stores them (the columns
    are BIGINT), and text without NUL, which PostgreSQL's text refuses (a board's file may carry
    one: it is shown as U+FFFD rather than failing the whole import)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class Cursor:
    """What store.py uses of sqlite3's cursor: fetchone, fetchall and iteration, rows as dicts."""

    def __init__(self, cursor: Any):
        self._cursor = cursor

    def fetchone(self) -> dict | None:
        return _row(self._cursor.fetchone()) if self._cursor.description else None

    def fetchall(self) -> list[dict]:
        return [row for row in (_row(r) for r in self._cursor.fetchall()) if row is not None] if self._cursor.description else []

    def __iter__(self) -> Iterator[dict]:
        return iter(self.fetchall())


class Connection:
    """What store.py uses of sqlite3's connection: execute(sql, params), in autocommit with explicit
    BEGIN/COMMIT/ROLLBACK as store.transaction writes them."""

    def __init__(self, raw: Any):
        self._raw = raw

    def execute(self, sql: str, params: Sequence = ()) -> Cursor:
        values = [_value(v) for v in params]
        return Cursor(self._raw.execute(translate(sql), values or None))


def _migrate(connection: Connection, url: str, schema: Schema) -> None:
    connection.execute("BEGIN")
    try:
        connection.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        connection.execute("CREATE TABLE IF NOT EXISTS edgeship_schema (version BIGINT NOT NULL)")
        row = connection.execute("SELECT max(version) AS version FROM edgeship_schema").fetchone()
        version = (row or {}).get("version") or 0
        if version > schema.version:
            raise EdgeshipError(f"{redact(url)} has schema version {version}, newer than this edgeship's {schema.version}; "
                                f"update edgeship on this runner")
        for number, script in schema.migrations:
            if number > version:
                for statement in schema.statements(script):
                    connection._raw.execute(translate_schema(statement))
        if version < schema.version:
            connection.execute("DELETE FROM edgeship_schema")
            connection.execute("INSERT INTO edgeship_schema (version) VALUES (?)", (schema.version,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _error(url: str, error: Exception) -> EdgeshipError:
    text = " ".join(str(error).split())[:300]
    kind = type(error).__name__
    if kind == "LockNotAvailable":
        return EdgeshipError(f"{redact(url)}: another import held the store too long ({text}); let it finish and run this again")
    if kind == "QueryCanceled":
        return EdgeshipError(f"{redact(url)}: a statement ran over {STATEMENT_TIMEOUT_S} s ({text}); check the server's load, "
                             f"then run this again")
    if kind == "OperationalError":
        return EdgeshipError(f"cannot reach the PostgreSQL store {redact(url)} ({text}); check the server is up and the URL "
                             f"(postgresql://USER@HOST[:PORT]/DATABASE), or leave --store out for the SQLite store")
    return EdgeshipError(f"the PostgreSQL store {redact(url)} failed ({kind}: {text}); is it an edgeship results database?")


@contextlib.contextmanager
def connect(url: str, lock_timeout_s: float, schema: Schema) -> Iterator[Connection]:
    """A connection to the store at `url`, migrated to the current schema. Any database error
    inside is one EdgeshipError line naming the URL (without its password) and the fix."""
    psycopg = _driver()
    from psycopg.rows import dict_row

    try:
        raw = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S,
                              options=f"-c lock_timeout={int(lock_timeout_s * 1000)} -c statement_timeout={STATEMENT_TIMEOUT_S * 1000}")
    except psycopg.Error as error:
        raise _error(url, error) from None
    try:
        connection = Connection(raw)
        _migrate(connection, url, schema)
        yield connection
    except psycopg.Error as error:
        raise _error(url, error) from None
    finally:
        raw.close()
