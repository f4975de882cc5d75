"""Result files come from boards and runs edgeship does not control: the store reads each as
untrusted (one bad file among many is skipped and named, the rest imported), the file name says
which board a file is from, a damaged database is one line, and the reports show every value
as text (report.md escapes Markdown and HTML, report.html is autoescaped)."""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship.report.fleet_table import rows as fleet_rows
from edgeship.report.markdown import md_code, md_text
from edgeship.report.publish import write_report
from tests.unit.edgeship.report.runs import make_run

RUN = "20261130T100000Z"


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results"
    return results, make_run(results, tmp_path / "artifacts", RUN)


def _why(summary) -> dict[str, str]:
    return {os.path.basename(path): reason for path, reason in summary["skipped"]}


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"host": "sim-x", "results": [\xff\xfe]}', r"not whole JSON \(UnicodeDecodeError"),
    (b"[" * 100_000 + b"]" * 100_000, r"JSON nested deeper than a result file is: not read"),
    (b'[{"host": "sim-x"}]', r"not a JSON object"),
    (b'{"host": "sim-x", "results": {"model": "digits"}}', r'no "results" list: not a bench.yml board file'),
    (b'{"host": "sim-x", "results": [{"model": {"a": 1}}, 7]}', None),  # read, its results skipped one by one
])
def test_one_bad_board_file_is_skipped_and_named_and_the_others_import(run, content, reason):
    results, folder = run
    (folder / "sim-x.json").write_bytes(content)
    summary = store.import_run(results, folder)
    assert not summary["complete"]
    if reason:
        assert re.match(reason, _why(summary)["sim-x.json"]), _why(summary)
    else:
        assert _why(summary)["sim-x.json result 0"] == "a result without a model" and _why(summary)["sim-x.json result 1"]
    assert {row["board"] for row in store.table_rows(results, "benches", RUN)} >= {"sim-rpi", "rock5b", "sim-rk3588"}


def test_a_file_too_big_or_a_link_is_not_read(run, tmp_path):
    results, folder = run
    with open(folder / "sim-huge.json", "wb") as huge:
        huge.truncate(store.MAX_FILE_BYTES + 1)  # sparse: no memory or disk spent
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"host": "sim-link", "results": []}))
    (folder / "sim-link.json").symlink_to(secret)
    why = _why(store.import_run(results, folder))
    assert re.match(r"\d+ MB, over the 32 MB a result file may have: not read", why["sim-huge.json"])
    assert why["sim-link.json"] == "not a regular file (a link or a special file): not read"


def test_the_file_name_says_which_board_and_a_disagreeing_host_field_is_noted(run):
    """A board file claiming to be another board had replaced that board's rows."""
    results, folder = run
    store.import_run(results, folder)
    before = sorted((row["board"], row["model"], row["mean_ms"]) for row in store.table_rows(results, "benches", RUN))
    board = json.loads((folder / "sim-rpi.json").read_text())
    board["host"] = "rock5b"
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    store.import_run(results, folder)
    assert sorted((row["board"], row["model"], row["mean_ms"]) for row in store.table_rows(results, "benches", RUN)) == before
    notes = store.run_record(results, RUN)["notes"]
    assert any(note.endswith("sim-rpi.json says host 'rock5b': its rows are filed under sim-rpi, as its file name says") for note in notes)


def test_figures_of_the_wrong_type_are_not_figures(run):
    results, folder = run
    board = json.loads((folder / "sim-rpi.json").read_text())
    steady = board["results"][0]["bench"]["steady"]
    steady.update(p90_ms="fast", p50_ms=float("nan"), runs=1 << 70, fps={"x": 1})
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    store.import_run(results, folder)
    row = next(r for r in store.table_rows(results, "benches", RUN) if r["board"] == "sim-rpi" and r["p90_ms"] is None)
    assert row["p50_ms"] is None and row["runs"] is None and row["fps"] is None and isinstance(row["mean_ms"], float)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda path: path.write_bytes(b"not a database" * 200), r"is not a readable edgeship results store \(file is not a database\)"),
    (lambda path: path.write_bytes(path.read_bytes()[:3000]), r"is not a readable edgeship results store \(.*\); move it aside \(mv .*edgeship\.db"),
    (lambda path: sqlite3.connect(path).execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 5}").connection.commit(),
     rf"has schema version {store.SCHEMA_VERSION + 5}, newer than this edgeship's"),
])
def test_a_damaged_store_is_one_line_naming_the_file_and_the_fix(run, damage, message):
    results, folder = run
    store.import_run(results, folder)
    damage(store.db_path(results))
    with pytest.raises(EdgeshipError, match=message) as raised:
        write_report(results, RUN)
    assert "\n" not in str(raised.value) and str(store.db_path(results)) in str(raised.value)


def test_a_store_locked_past_the_bound_says_so(run, monkeypatch):
    results, folder = run
    store.import_run(results, folder)
    holder = sqlite3.connect(store.db_path(results), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(store, "LOCK_TIMEOUT_S", 0.2)  # the bound, shortened; the lock is real
    try:
        with pytest.raises(EdgeshipError, match=r"edgeship\.db is locked by another process \(waited 0\.2 s"):
            store.import_run(results, folder, force=True)
    finally:
        holder.close()


@pytest.mark.parametrize("name", ["a/b", "../x", "..", "x\ny", "-rf", ""])
def test_a_run_id_or_tag_that_is_not_a_name_is_refused(run, name):
    results, folder = run
    store.import_run(results, folder)
    with pytest.raises(EdgeshipError, match=r"is not a safe name .*; run ids are the folder names under results/"):
        write_report(results, name)


def test_report_md_shows_board_strings_as_text_and_report_html_escapes_them(run):
    results, folder = run
    board = json.loads((folder / "sim-rpi.json").read_text())
    evil = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) | http://evil.example *bold*\n# heading"
    board["detect"]["board"]["model"] = evil
    board["results"][0]["model"] = "../../escape"  # a model name becomes a plot's file name
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    html, markdown = write_report(results, RUN)
    md = markdown.read_text()
    for raw in ("<img", "](javascript", "http:"):  # nowhere unescaped
        assert not re.search(r"(?<!\\)" + re.escape(raw), md), raw
    assert "\n# heading" not in md
    assert r"\<img src=x onerror=alert(1)\> \[click\](javascript:alert(1)) \| http\://evil.example \*bold\* # heading" in md
    text = html.read_text()
    assert "<img src=x onerror" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    plots = {path.name for path in (folder / "plots").iterdir()}
    assert all(".." not in name and "/" not in name for name in plots) and not (results.parent / "escape.svg").exists()
    assert any(name.startswith("latency-escape-") for name in plots)


def test_markdown_helpers():
    assert md_text("a_b|c\nd") == r"a_b\|c d"  # an intraword _ opens no emphasis (CommonMark): x86_64 reads as it is
    assert md_text("_em_ __init__") == r"\_em\_ \_\_init\_\_"
    assert md_text("www.example.com") == r"www\.example.com"
    assert md_code("x`y|z") == "``x`y\\|z``"
    assert md_code("`edge`") == "`` `edge` ``"


def test_the_fleet_summary_reads_board_files_as_untrusted(run):
    _, folder = run
    (folder / "sim-x.json").write_bytes(b"[" * 100_000)
    (folder / "sim-y.json").write_text(json.dumps({"host": "rock5b", "results": [{"model": "m", "bench": "not a dict"}]}))
    table = {row[0]: row for row in fleet_rows(folder)}
    assert table["sim-x"][-1].startswith("FAILED: sim-x.json not read (JSON nested deeper")
    assert table["sim-y"][-1] == "FAILED: a result of sim-y.json not read (AttributeError)"


@pytest.mark.parametrize("host", ["2001:db8::5", "fe80::1%eth0", "192.0.2.7"])
def test_a_board_named_by_its_ip_address_is_imported_under_it(run, host):
    """An inventory host may be an address; an IPv6 one is no name-rule name (':'), and its board
    file `<host>.json` had been skipped as not a board's."""
    results, folder = run
    (folder / f"{host}.json").write_text((folder / "sim-rpi.json").read_text())
    summary = store.import_run(results, folder)
    assert f"{host}.json" not in _why(summary)
    assert host in {row["board"] for row in store.table_rows(results, "benches", RUN)}
    assert host in {row[0] for row in fleet_rows(folder)}


@pytest.mark.parametrize("name", ["2001:db8::5:x", "a b", "..", "fe80::1%eth 0", "fe80::1%<b>"])
def test_a_file_named_neither_a_board_nor_an_address_is_still_skipped(run, name):
    results, folder = run
    (folder / f"{name}.json").write_text((folder / "sim-rpi.json").read_text())
    summary = store.import_run(results, folder)
    assert "its name is not a board's" in _why(summary)[f"{name}.json"]
