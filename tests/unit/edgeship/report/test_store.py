"""The results store: idempotent imports, imports killed half-way, half-written runs, board kinds,
the schema's version, and the comparison rows the report and the main job read."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import store
from tests.support import ROOT
from tests.unit.edgeship.report.runs import make_run

RUN, LATER = "20261130T100000Z", "20261201T100000Z"


def counts(results) -> dict[str, int]:
    with sqlite3.connect(store.db_path(results)) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("runs", *store.RECORD_TABLES)}


def dump(results) -> dict[str, list]:
    """Every row of every table (the import time aside), for before/after comparisons."""
    with sqlite3.connect(store.db_path(results)) as connection:
        tables = {table: sorted(map(repr, connection.execute(f"SELECT * FROM {table}"))) for table in store.RECORD_TABLES}
        tables["runs"] = sorted(map(repr, connection.execute("SELECT run_id, fingerprint, complete FROM runs")))
    return tables


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results"
    return results, make_run(results, tmp_path / "artifacts", RUN)


def test_importing_twice_gives_the_same_rows_and_no_duplicates(run):
    results, folder = run
    first = store.import_run(results, folder)
    assert not first["unchanged"] and first["complete"] and first["skipped"] == []
    assert first["rows"] == {"boards": 4, "conversions": 5, "checks": 5, "benches": 9, "demos": 2}
    before = dump(results)
    assert store.import_run(results, folder)["unchanged"]
    forced = store.import_run(results, folder, force=True)  # rewritten, not appended
    assert not forced["unchanged"]
    assert counts(results) == {"runs": 1, "boards": 4, "conversions": 5, "checks": 5, "benches": 9, "demos": 2}
    assert dump(results) == before


def test_a_changed_run_folder_replaces_its_rows_and_keeps_its_tags(run, tmp_path):
    results, folder = run
    store.import_run(results, folder)
    store.set_tag(results, "baseline", RUN)
    board = json.loads((folder / "sim-rpi.json").read_text())
    board["results"][0]["bench"]["steady"]["mean_ms"] = 123.0
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    assert not store.import_run(results, folder)["unchanged"]
    rows = store.table_rows(results, "benches", RUN)
    assert [r["mean_ms"] for r in rows if r["board"] == "sim-rpi" and r["model"] == "digits"] == [123.0]
    assert counts(results)["benches"] == 9
    assert store.resolve_run(results, "baseline") == RUN


def test_an_artifact_deleted_after_the_import_keeps_its_manifest_figures(run, tmp_path):
    results, folder = run
    store.import_run(results, folder)
    before = {r["artifact"]: (r["image_tag"], r["toolchain"]) for r in store.table_rows(results, "conversions", RUN)}
    for link in (folder / "deploy-artifacts").iterdir():
        (link.resolve() / "manifest.json").unlink()
    store.import_run(results, folder, force=True)
    after = {r["artifact"]: (r["image_tag"], r["toolchain"]) for r in store.table_rows(results, "conversions", RUN)}
    assert after == before and all(tag for tag, _ in after.values())


KILLER = """
import sys, time
from pathlib import Path
from edgeship.report import store

results, run_dir, marker = map(Path, sys.argv[1:4])

def progress(table, done, total):
    if done == int(sys.argv[4]):
        marker.write_text(f"{table} {done}/{total}")
        time.sleep(600)  # killed here, in the middle of the transaction

store.import_run(results, run_dir, progress=progress, force=True)
"""


def import_killed_midway(results, folder, tmp_path, after_rows: int = 7) -> str:
    """Run an import in another process and SIGKILL it once `after_rows` rows are written."""
    marker = tmp_path / f"marker-{time.monotonic_ns()}"
    process = subprocess.Popen([sys.executable, "-c", KILLER, str(results), str(folder), str(marker), str(after_rows)], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, f"the import ended before it was killed: {process.stderr.read() if process.stderr else ''}"
        assert time.monotonic() < deadline, "the import never reached the rows it should be killed at"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)
    assert process.returncode == -signal.SIGKILL
    return marker.read_text()


def test_an_import_killed_midway_leaves_no_partial_rows(run, tmp_path):
    results, folder = run
    where = import_killed_midway(results, folder, tmp_path)
    assert where.endswith("/25"), where  # it was killed with 7 of 25 rows written
    assert (results / "edgeship.db-journal").exists()  # the hot journal SQLite rolls back on the next open
    assert counts(results) == {"runs": 0, "boards": 0, "conversions": 0, "checks": 0, "benches": 0, "demos": 0}
    with store.connect(results) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the run imports whole afterwards
    assert store.import_run(results, folder)["rows"]["benches"] == 9
    assert counts(results)["benches"] == 9


def test_a_reimport_killed_midway_keeps_the_rows_that_were_there(run, tmp_path):
    results, folder = run
    store.import_run(results, folder)
    before = dump(results)
    board = json.loads((folder / "sim-rpi.json").read_text())
    board["results"][0]["bench"]["steady"]["mean_ms"] = 999.0
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    import_killed_midway(results, folder, tmp_path, after_rows=20)
    assert dump(results) == before
    store.import_run(results, folder)
    assert 999.0 in [r["mean_ms"] for r in store.table_rows(results, "benches", RUN)]


def test_a_half_written_run_imports_what_is_whole_and_says_what_is_not(tmp_path):
    results = tmp_path / "results"
    folder = make_run(results, tmp_path / "artifacts", RUN)
    (folder / "report.json").unlink()  # the main job was killed before its end
    whole = (folder / "sim-rk3588.json").read_text()
    (folder / "sim-rk3588.json").write_text(whole[: len(whole) // 2])  # a board file cut off mid-copy
    summary = store.import_run(results, folder)
    assert not summary["complete"]
    assert {os.path.basename(path) for path, _ in summary["skipped"]} == {"sim-rk3588.json", "report.json"}
    assert "not whole JSON" in dict((os.path.basename(p), why) for p, why in summary["skipped"])["sim-rk3588.json"]
    benches = store.table_rows(results, "benches", RUN)
    assert {r["board"] for r in benches} == {"sim-rpi", "rock5b"}  # nothing from the cut file, no controller rows without report.json
    assert store.run_record(results, RUN)["complete"] == 0
    # the run finishes later: the same folder, now whole, replaces the partial rows
    (folder / "sim-rk3588.json").write_text(whole)
    make_run(tmp_path / "again", tmp_path / "artifacts", RUN)
    (folder / "report.json").write_text((tmp_path / "again" / RUN / "report.json").read_text())
    summary = store.import_run(results, folder)
    assert summary["complete"] and counts(results)["benches"] == 9 and counts(results)["runs"] == 1


def test_board_files_of_the_wrong_shape_are_skipped_and_named_not_a_traceback(tmp_path):
    results = tmp_path / "results"
    folder = make_run(results, tmp_path / "artifacts", RUN)
    board = json.loads((folder / "sim-rpi.json").read_text())
    board["results"][0]["bench"]["fallback"] = "yes"  # valid JSON, not what bench.yml writes
    (folder / "sim-rpi.json").write_text(json.dumps(board))
    stats_file = next(folder.glob("demo/*/stats.json"))
    stats_file.write_text(json.dumps({**json.loads(stats_file.read_text()), "frames": ["not", "a", "record"]}))
    summary = store.import_run(results, folder)
    assert not summary["complete"]
    why = {os.path.basename(path): reason for path, reason in summary["skipped"]}
    assert why["sim-rpi.json result 0"].startswith("not read (AttributeError") and why["stats.json"].startswith("not read (")
    assert summary["rows"]["benches"] == 8 and summary["rows"]["demos"] == 1


def test_simulated_and_emulated_boards_are_told_from_hardware(run):
    results, folder = run
    store.import_run(results, folder)
    kinds = {b["board"]: (b["simulated"], b["emulated"]) for b in store.table_rows(results, "boards", RUN)}
    assert kinds == {"sim-rk3588": (1, 1), "sim-rpi": (1, 0), "rock5b": (0, 0), "controller": (0, 0)}


def test_without_the_controllers_metadata_a_simulated_foreign_board_still_counts_as_emulated(tmp_path):
    results = tmp_path / "results"
    folder = make_run(results, tmp_path / "artifacts", RUN, with_meta=False)
    store.import_run(results, folder)
    kinds = {b["board"]: b["emulated"] for b in store.table_rows(results, "boards", RUN)}
    assert kinds["rock5b"] == 0  # a real aarch64 board is never labelled emulated
    assert kinds["sim-rk3588"] == int(os.uname().machine != "aarch64")
    assert store.run_record(results, RUN)["git_commit"] is None


def test_the_schema_is_versioned_and_a_newer_store_is_refused(tmp_path):
    results = tmp_path / "results"
    with store.connect(results) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    with sqlite3.connect(store.db_path(results)) as connection:
        connection.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    newer = rf"edgeship.db has schema version {store.SCHEMA_VERSION + 1}, newer than this edgeship's {store.SCHEMA_VERSION}; update edgeship"
    with pytest.raises(EdgeshipError, match=newer), store.connect(results):
        pass
    store.db_path(results).write_bytes(b"this is not a database" * 100)
    with pytest.raises(EdgeshipError, match=r"is not a readable edgeship results store .*move it aside"), store.connect(results):
        pass



def test_a_store_migrated_by_another_process_meanwhile_is_not_migrated_twice(tmp_path):
    """Two processes open a new store at once: both read version 0, one migrates; the other,
    once it holds the write lock, sees the new version and goes on (not "move it aside")."""
    results = tmp_path / "results"
    with store.connect(results):
        pass  # the other process, done migrating

    class ReadBeforeTheOtherMigrated:
        """A connection whose first read of the version predates the other process's migration."""

        def __init__(self, connection):
            self.connection, self.stale = connection, True

        def execute(self, statement, *args):
            if statement == "PRAGMA user_version" and self.stale:
                self.stale = False
                return self.connection.execute("SELECT 0")
            return self.connection.execute(statement, *args)

    connection = sqlite3.connect(store.db_path(results), isolation_level=None)
    try:
        store._migrate(ReadBeforeTheOtherMigrated(connection), store.db_path(results))
        assert connection.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert not connection.in_transaction
    finally:
        connection.close()

def test_a_store_of_an_older_schema_is_migrated_and_keeps_its_rows(run, monkeypatch):
    results, folder = run
    first = store.MIGRATIONS[:1]
    with monkeypatch.context() as patched:  # the store as the first schema made it
        patched.setattr(store, "MIGRATIONS", first)
        patched.setattr(store, "SCHEMA_VERSION", first[-1][0])
        with store.connect(results) as connection, store.transaction(connection):
            connection.execute("INSERT INTO runs (run_id, complete, fingerprint, imported_at) VALUES ('old', 1, 'x', 'then')")
    with sqlite3.connect(store.db_path(results)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
    store.import_run(results, folder)  # opens, migrates to the current schema, imports
    with sqlite3.connect(store.db_path(results)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert connection.execute("SELECT timings FROM runs WHERE run_id = 'old'").fetchone()[0] == "{}"
    assert store.run_ids(results) == [RUN, "old"]


def test_comparison_rows_label_fallback_emulation_and_published_figures(run):
    results, folder = run
    store.import_run(results, folder)
    rows = store.comparison_rows(results, RUN)
    by_key = {(r["model"], r["board"], r["target"], r["quant"]): r for r in rows}
    emulated = by_key[("mobilenetv2", "sim-rk3588", "tflite", "fp32")]
    assert emulated["labels"] == ["emulated (aarch64 on qemu)", "CPU fallback for rk3588 int8"]
    assert emulated["fallback"] and emulated["emulated"] and emulated["requested_target"] == "rk3588"
    npu = by_key[("mobilenetv2", "rock5b", "rk3588", "int8")]
    assert npu["labels"] == [] and npu["accelerator"] == "rknpu" and npu["power_w"] == 5.2  # the input rail, not the sum of rails
    assert [p["published_model"] for p in npu["published"]] == ["mobilenetv2-12"]
    assert npu["published"][0]["label"] == "published, not measured here"
    assert all(not r["published"] for r in rows if r is not npu)  # simulated, emulated and controller rows never get one
    assert npu["size_bytes"] == 4_100_000 and npu["convert_s"] == 16.5 and npu["metric_vs_fp32"] == pytest.approx(0.93)
    rpi = by_key[("digits", "sim-rpi", "tflite", "int8")]
    assert rpi["labelled_fp32"] == 0.978 and rpi["labelled_converted"] == pytest.approx(0.972) and rpi["check_passed"] == 1
    assert rpi["throughput_fps"] > rpi["fps"] and rpi["throughput_instances"] == 2 and rpi["peak_rss_mb"] == pytest.approx(87.9, abs=0.1)
    controller = by_key[("digits", "controller", "onnx", "fp32")]
    assert controller["labels"] == ["controller CPU, 1 thread"] and controller["source"] == "controller"
    assert {(r["model"], r["board"]) for r in rows} == {
        ("digits", "sim-rk3588"), ("digits", "sim-rpi"), ("digits", "controller"),
        ("mobilenetv2", "sim-rk3588"), ("mobilenetv2", "sim-rpi"), ("mobilenetv2", "rock5b"), ("mobilenetv2", "controller")}


def test_a_conversion_nothing_ran_still_has_its_row(tmp_path):
    results = tmp_path / "results"
    folder = make_run(results, tmp_path / "artifacts", RUN, real_board=False)
    store.import_run(results, folder)
    idle = [r for r in store.comparison_rows(results, RUN) if r["board"] is None]
    assert [(r["model"], r["target"], r["quant"], r["labels"]) for r in idle] == [
        ("mobilenetv2", "rk3588", "int8", ["not benchmarked (needs rknpu)"])]


def test_runs_resolve_by_id_tag_and_age(tmp_path):
    results = tmp_path / "results"
    for run_id in (RUN, LATER):
        make_run(results, tmp_path / "artifacts", run_id)
    assert [s["run_id"] for s in store.sync(results)] == [RUN, LATER]
    assert store.resolve_run(results, None) == LATER and store.previous_run(results, LATER) == RUN and store.previous_run(results, RUN) is None
    store.set_tag(results, "baseline", RUN)
    store.set_tag(results, "baseline", LATER)  # a tag moves
    assert store.resolve_run(results, "baseline") == LATER
    with pytest.raises(EdgeshipError, match=r"no run or tag named 'nope' .* recent runs: 20261201T100000Z, 20261130T100000Z; tags: baseline"):
        store.resolve_run(results, "nope")


def test_a_text_reading_demo_is_scored_against_the_videos_ground_truth(run):
    results, folder = run
    board = folder / "demo" / "sim-rpi"
    stats = json.loads((board / "stats.json").read_text())
    stats["text_model"] = {"artifact": {"path": "/artifacts/ppocr-rec-onnx-int8-0123456789ab"}, "backend": "onnxruntime"}
    stats["detections"] = {"boxes": 3}
    (board / "stats.json").write_text(json.dumps(stats))
    truth = [{"frame": 0, "items": [{"box": [10, 10, 110, 40], "text": "EXIT"}, {"box": [10, 60, 110, 90], "text": "OPEN"}]},
             {"frame": 1, "items": [{"box": [10, 10, 110, 40], "text": "EXIT"}]}]
    (folder / "demo" / store.DEMO_TRUTH).write_text(json.dumps({"video": "signs.avi", "frames": truth}))
    # frame 0: both signs found, one misread by a character; frame 1: the sign found and read, plus a false box
    predictions = [{"source": "signs.avi:0", "boxes": [{"box": [11, 10, 110, 41], "text": "EXIT"}, {"box": [10, 61, 109, 90], "text": "0PEN"}]},
                   {"source": "signs.avi:1", "boxes": [{"box": [10, 10, 110, 40], "text": "EXIT"}, {"box": [300, 300, 340, 320], "text": "X"}]}]
    (board / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in predictions))
    imported = store.import_run(results, folder)
    assert imported["complete"] and imported["skipped"] == []
    demo = next(row for row in store.table_rows(results, "demos", RUN) if row["board"] == "sim-rpi")
    assert demo["text_model"] == "ppocr-rec" and demo["boxes"] == 3 and demo["scored_frames"] == 2
    assert demo["det_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))  # tp 3, fp 1, fn 0
    assert demo["char_accuracy"] == pytest.approx(1 - 1 / 12)  # one edit in 12 truth characters
    other = next(row for row in store.table_rows(results, "demos", RUN) if row["board"] == "rock5b")
    assert other["det_f1"] is None and other["char_accuracy"] is None  # no predictions came home: not scored
    from edgeship.report.publish import write_report

    markdown = next(path for path in write_report(results, RUN) if path.suffix == ".md").read_text()
    assert "| sim-rpi (simulated) | mobilenetv2 + ppocr-rec | litert |" in markdown and "| 3 | 0.857 | 0.917 |" in markdown
