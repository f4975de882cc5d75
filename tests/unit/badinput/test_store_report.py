"""Bad-input corpus, families `store import` (the results database and the folders `invoke report`
imports) and `report` (run ids, tags and thresholds given to `invoke report` and `invoke
compare`): each ends in one line naming the file or value and the fix, a non-zero exit, no
traceback, and nothing written outside the results folder.

A bad board file among good ones is not refused: it is skipped and named, and the run imports
what is whole. That is tested at the end (and in tests/unit/edgeship/report/test_untrusted_results.py),
not counted as a corpus kind."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from edgeship.report import store
from tests.support.badinput import assert_one_clean_line, invoke_cli
from tests.unit.edgeship.report.runs import make_run

PREFIX = "edgeship: error: "
RUN, LATER = "20261130T100000Z", "20261201T100000Z"
SAFE = r"is not a safe name \(1-64 letters"


def _future(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 7}")


def _dropped(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE benches")


def _directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def _unsafe_run_id(db: Path) -> None:
    """A store from elsewhere whose tag names a run id that is a path (report.md would land there)."""
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO tags (name, run_id, created) VALUES ('evil', '../../outside', 'now')")


# (kind, damage done to results/edgeship.db after one good import, what the one line must say)
NOT_A_STORE = r"edgeship\.db is not a readable edgeship results store "
DATABASES = [
    ("not a database", lambda db: db.write_bytes(b"SQLite? no." * 500),
     NOT_A_STORE + r"\(file is not a database\); move it aside \(mv .*edgeship\.db .*edgeship\.db\.damaged\)"),
    ("truncated database", lambda db: db.write_bytes(db.read_bytes()[:2048]), NOT_A_STORE + r"\(.*\); move it aside"),
    ("database from the future", _future,
     rf"edgeship\.db has schema version {store.SCHEMA_VERSION + 7}, newer than this edgeship's .*move the file aside"),
    ("database missing a table", _dropped, NOT_A_STORE + r"\(no such table: benches\); move it aside"),
    ("database is a folder", _directory, NOT_A_STORE + r"\(unable to open database file\)"),
    ("zeroed database header", lambda db: db.write_bytes(b"\0" * 100 + db.read_bytes()[100:]), NOT_A_STORE),
    ("a run id in the store that is a path", _unsafe_run_id, r"the run id .*edgeship\.db gives for evil '\.\./\.\./outside' " + SAFE),
]
THRESHOLD = ["compare", "--base", RUN, "--new", LATER, "--results", "{r}", "--threshold"]
# (kind, invoke arguments; {r} is the results folder)
REPORTS = [
    ("report --run with /", ["report", "--run", "a/b", "--results", "{r}"], r"--run 'a/b' " + SAFE + r".*; run ids are the folder names"),
    ("report --run ..", ["report", "--run", "..", "--results", "{r}"], r"--run '\.\.' " + SAFE),
    ("report --run ../ outside", ["report", "--run", "../outside", "--results", "{r}"], r"--run '\.\./outside' " + SAFE),
    ("report --run with a newline", ["report", "--run", "x\ny", "--results", "{r}"], r"--run 'x\\ny' " + SAFE),
    ("report --run unknown", ["report", "--run", "20990101T000000Z", "--results", "{r}"],
     r"no run or tag named '20990101T000000Z' in .*edgeship\.db; recent runs: 20261201T100000Z, 20261130T100000Z; tags: none$"),
    ("report on an empty results folder", ["report", "--results", "{r}/../empty"],
     r"empty holds no run yet \(no edgeship\.db there\); run `\./dev main`"),
    ("report on a results file", ["report", "--results", "{r}/../a-file"], r"a-file does not exist; run `\./dev main` first, or pass --results DIR$"),
    ("compare --base with /", ["compare", "--base", "base/line", "--results", "{r}"], r"--base 'base/line' " + SAFE),
    ("compare --new ..", ["compare", "--base", RUN, "--new", "..", "--results", "{r}"], r"--new '\.\.' " + SAFE),
    ("compare unknown tag", ["compare", "--base", "baseline", "--results", "{r}"], r"no run or tag named 'baseline' in .*; tags: none$"),
    ("compare --tag with /", ["compare", "--tag", "release/1", "--results", "{r}"], r"--tag 'release/1' " + SAFE),
    ("compare --tag with Jinja", ["compare", "--tag", "{{x}}", "--results", "{r}"], r"--tag '\{\{x\}\}' " + SAFE),
    ("compare --threshold nan", [*THRESHOLD, "latency_pct=nan"],
     r"--threshold latency_pct=nan: a threshold is a finite number, not negative; e\.g\. --threshold latency_pct=5$"),
    ("compare --threshold negative", [*THRESHOLD, "size_pct=-3"], r"--threshold size_pct=-3: a threshold is a finite number"),
    ("compare --threshold inf", [*THRESHOLD, "rss_pct=inf"], r"--threshold rss_pct=inf: a threshold is a finite number"),
    ("compare --threshold unknown", [*THRESHOLD, "speed=1"], r"unknown threshold 'speed'; use one of"),
    ("compare --threshold not a number", [*THRESHOLD, "latency_pct=lots"], r"'lots' is not a number"),
    ("compare a run with itself", ["compare", "--base", RUN, "--new", RUN, "--results", "{r}"], r"BASE and NEW are the same run \(20261130T"),
]
KINDS = [("store import", kind) for kind, _, _ in DATABASES] + [("report", kind) for kind, _, _ in REPORTS]


def _tree(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else "other"
            for path in sorted(root.rglob("*"))}


@pytest.fixture
def results(tmp_path):
    """Two imported runs, an empty folder and a file beside them."""
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", RUN)
    make_run(results, tmp_path / "artifacts", LATER)
    store.sync(results)
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a folder\n")
    return results


@pytest.mark.parametrize(("kind", "damage", "pattern"), DATABASES, ids=[case[0] for case in DATABASES])
def test_a_damaged_store_is_one_line_naming_the_file_and_the_fix(results, kind, damage, pattern):
    damage(store.db_path(results))
    outside = _tree(results.parent / "artifacts")
    result = invoke_cli("report", "--run", "evil" if damage is _unsafe_run_id else RUN, "--results", str(results))
    assert_one_clean_line(result, PREFIX, pattern)
    assert _tree(results.parent / "artifacts") == outside and not (results.parent.parent / "outside").exists()
    assert not (results / RUN / "report.md").exists()


@pytest.mark.parametrize(("kind", "args", "pattern"), REPORTS, ids=[case[0] for case in REPORTS])
def test_a_bad_run_id_tag_or_threshold_is_one_line(results, kind, args, pattern):
    before = _tree(results.parent)
    result = invoke_cli(*[arg.replace("{r}", str(results)) for arg in args])
    assert_one_clean_line(result, PREFIX, pattern)
    after = _tree(results.parent)
    # nothing new anywhere, and nothing changed outside the store (a report re-import may touch the db only)
    assert {key for key in after if key not in before} == set()
    assert {key for key in before if before[key] != after.get(key)} <= {"results/edgeship.db"}


def test_bad_board_files_among_good_ones_are_skipped_and_named_and_the_report_is_written(results):
    """Not a corpus kind: one bad board file must not stop the report of the others."""
    folder = results / LATER
    (folder / "sim-utf.json").write_bytes(b'{"host": "sim-utf", "results": [\xff]}')
    (folder / "sim-deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (folder / "sim-list.json").write_text("[1, 2]")
    with open(folder / "sim-huge.json", "wb") as huge:
        huge.truncate(store.MAX_FILE_BYTES + 1)
    board = json.loads((folder / "sim-rpi.json").read_text())
    (folder / "sim-rpi.json").write_text(json.dumps({**board, "host": "rock5b"}))
    result = invoke_cli("report", "--run", LATER, "--results", str(results))
    assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
    markdown = (folder / "report.md").read_text()
    assert "**This run is incomplete**" in markdown
    for name, why in (("sim-utf.json", "not whole JSON (UnicodeDecodeError"), ("sim-deep.json", "JSON nested deeper than a result file is"),
                      ("sim-list.json", "not a JSON object"), ("sim-huge.json", "over the 32 MB a result file may have")):
        line = next(line for line in markdown.splitlines() if name in line)
        assert why in line.replace("\\", ""), line  # (the line is Markdown: its underscores escaped)
    assert "sim-rpi.json says host 'rock5b': its rows are filed under sim-rpi, as its file name says" in markdown
    boards = {row["board"] for row in store.table_rows(results, "benches", LATER)}
    assert {"sim-rpi", "rock5b", "sim-rk3588"} <= boards
