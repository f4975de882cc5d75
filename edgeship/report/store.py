"""The results store: every conversion, board, check, benchmark and demo of every run in one
SQLite database, `results/edgeship.db`, kept over time.

A run folder (`results/<run-id>/`) is what a run leaves behind: `report.json` (the main job's
conversion rows and run metadata), one `<host>.json` per board from bench.yml, the demo's
`demo/<host>/stats.json`, and the artifacts' `manifest.json` (through `deploy-artifacts/` or
the paths the conversion rows name). `import_run` reads all of it first, then replaces that
run's rows in ONE transaction: importing twice gives the same rows, and an import killed
half-way leaves the database as it was (SQLite's journal rolls the transaction back).
A run that was itself killed half-way (no report.json yet, a truncated board file) imports
what is whole and is marked incomplete, with the files it skipped and why.

Schema: versioned with `PRAGMA user_version` and the migrations in MIGRATIONS (each applied
once, in order, in its own transaction). One table per record kind: runs, boards,
conversions, checks, benches, demos; tags name runs as baselines.

SQLite (the standard library's sqlite3) rather than a server or an ORM: one file next to the
results, transactions that survive a killed process, and plain SQL any tool can read.
A team's runners and boards can share one PostgreSQL database instead (`--store
postgresql://...`, use()): the same schema, migrations and queries, run through pgstore.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import math
import os
import platform
import re
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from edgeship_runtime.files import UnreadableFile, read_json_object

DB_NAME = "edgeship.db"
# Files in a run folder that are not a board's bench.yml document (the main job writes timings.json).
NOT_BOARD_FILES = {"report.json", "summary.json", "timings.json"}
# The ground truth of the demo's video ({"video": name, "frames": [{"frame": i, "items": [{"box", "text"}]}]}), which scores
# each board's predictions.jsonl
DEMO_TRUTH = "truth.json"
CONTROLLER = "controller"  # the board name of the main job's own runtime check and benchmark, on this machine's CPU
# Fewer timed runs than this and a benchmark is a sample (an emulated board's bounded run), labelled as such.
SAMPLE_RUNS = 5

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,                -- the run folder's name (UTC time of the run: sorts by time)
    started TEXT,                           -- ISO 8601, UTC
    git_commit TEXT, git_dirty INTEGER,     -- the controller's checkout
    controller TEXT, controller_arch TEXT, controller_kernel TEXT,
    images TEXT NOT NULL DEFAULT '{}',      -- JSON {image tag: image id} the conversions ran in
    complete INTEGER NOT NULL,              -- 1: report.json was there and every file read whole
    skipped TEXT NOT NULL DEFAULT '[]',     -- JSON [[file, why]] files left out of the import
    fleet_exit INTEGER,
    notes TEXT NOT NULL DEFAULT '[]',       -- JSON [str]
    fingerprint TEXT NOT NULL,              -- sha256 of what was imported (an unchanged folder is not rewritten)
    imported_at TEXT NOT NULL
);
CREATE TABLE tags (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    created TEXT NOT NULL
);
CREATE TABLE boards (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    board TEXT NOT NULL,                    -- inventory host name, or 'controller'
    board_model TEXT, compatible TEXT NOT NULL DEFAULT '[]', arch TEXT, kernel TEXT, python TEXT,
    available TEXT NOT NULL DEFAULT '[]',   -- JSON: accelerators the runtime found
    runtimes TEXT NOT NULL DEFAULT '{}',    -- JSON: runtime package versions
    target TEXT, release_id TEXT,
    simulated INTEGER NOT NULL DEFAULT 0,   -- a container on the controller (edgeship's simulated fleet)
    emulated INTEGER NOT NULL DEFAULT 0,    -- a foreign architecture under qemu-user: measures qemu, not a board
    detect TEXT,                            -- JSON: `edgeship-runtime detect` as the board printed it
    PRIMARY KEY (run_id, board)
);
CREATE TABLE conversions (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    artifact TEXT NOT NULL,                 -- the artifact folder's name
    model TEXT NOT NULL, target TEXT NOT NULL, quant TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',     -- JSON: target options other than quant and input shapes
    input_shapes TEXT NOT NULL DEFAULT '{}',
    task TEXT, artifact_sha256 TEXT, source_sha256 TEXT, cache_key TEXT,
    size_bytes INTEGER,
    cosine_min REAL, snr_db_min REAL,
    metric TEXT, metric_vs_fp32 REAL,       -- the task's headline metric of the converted model against fp32
    label_metric TEXT, labelled_fp32 REAL, labelled_converted REAL, labelled_samples INTEGER,
    accuracy_passed INTEGER,
    convert_s REAL,
    image_tag TEXT, image_id TEXT, toolchain TEXT NOT NULL DEFAULT '{}',
    record TEXT NOT NULL,                   -- JSON: the main job's row as written
    PRIMARY KEY (run_id, artifact)
);
CREATE INDEX conversions_by_sha ON conversions(artifact_sha256);
CREATE TABLE checks (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    board TEXT NOT NULL, model TEXT NOT NULL,
    target TEXT, quant TEXT, backend TEXT, artifact_sha256 TEXT,
    passed INTEGER, integrity_passed INTEGER, task TEXT, samples INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}', failed TEXT NOT NULL DEFAULT '[]',
    fallback INTEGER NOT NULL DEFAULT 0, fallback_reason TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, board, model)
);
CREATE TABLE benches (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    board TEXT NOT NULL, model TEXT NOT NULL,
    target TEXT NOT NULL, quant TEXT NOT NULL,   -- of the artifact that ran (a fallback's CPU artifact)
    requested_target TEXT, requested_quant TEXT, -- what the board was meant to run
    backend TEXT, accelerator TEXT, artifact_sha256 TEXT,
    source TEXT NOT NULL,                   -- 'board' (bench.yml) or 'controller' (the main job, this machine's CPU)
    fallback INTEGER NOT NULL DEFAULT 0, fallback_reason TEXT,
    runs INTEGER, mean_ms REAL, std_ms REAL, min_ms REAL, p10_ms REAL, p50_ms REAL, p90_ms REAL, p99_ms REAL, max_ms REAL,
    fps REAL, throughput_fps REAL, throughput_instances INTEGER,
    peak_rss_kb INTEGER, power_w REAL, power_sensor TEXT,
    load_s REAL, first_inference_s REAL, threads INTEGER,
    note TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, board, model, target, quant)
);
CREATE INDEX benches_by_sha ON benches(artifact_sha256);
CREATE TABLE demos (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    board TEXT NOT NULL,
    model TEXT, artifact TEXT, artifact_sha256 TEXT, target TEXT, quant TEXT,
    backend TEXT, fallback INTEGER NOT NULL DEFAULT 0, mode TEXT, source_kind TEXT, task TEXT,
    frames_captured INTEGER, frames_processed INTEGER, frames_dropped INTEGER,
    fps REAL, e2e_mean_ms REAL, e2e_p50_ms REAL, e2e_p90_ms REAL,
    bottleneck TEXT, stages TEXT NOT NULL DEFAULT '{}',   -- JSON {stage: {mean_ms, p50_ms, p90_ms, ...}} in pipeline order
    elapsed_s REAL, error TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, board)
);
"""),
    # the main job's phases (wall-clock start, end and seconds of each), for the time-to-result table
    (2, "ALTER TABLE runs ADD COLUMN timings TEXT NOT NULL DEFAULT '{}'"),
    # a text-reading demo: its recognizer, and how well it read a video whose ground truth the run kept
    # (demo/truth.json): detection F1 of its boxes, character accuracy of its text, frames scored
    (3, """
ALTER TABLE demos ADD COLUMN text_model TEXT;    -- the recognizer's model, reading the boxes of `model`
ALTER TABLE demos ADD COLUMN boxes INTEGER;
ALTER TABLE demos ADD COLUMN det_f1 REAL;
ALTER TABLE demos ADD COLUMN char_accuracy REAL;
ALTER TABLE demos ADD COLUMN scored_frames INTEGER;
"""),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
RECORD_TABLES = ("boards", "conversions", "checks", "benches", "demos")

# Bumped when read_run's reading of a folder changes, so that stored runs are imported again.
IMPORTER_VERSION = 2

Progress = Callable[[str, int, int], None]  # (table, rows written so far, rows in this import)
GIT_TIMEOUT_S = 30  # the run's commit and dirtiness: git answers in milliseconds, or something is wrong
# A board's <host>.json is a few kB; a file this big is not one, and is not read into memory.
MAX_FILE_BYTES = 32 * 1024 * 1024
LOCK_TIMEOUT_S = 60.0  # another process writing the store (a second `invoke report`) is waited for this long


def db_path(results: Path) -> Path:
    return Path(results) / DB_NAME


# A PostgreSQL store shared by many runners (pgstore.py), set by `--store postgresql://...`; None:
# the SQLite file in each results folder.
_url: str | None = None


def use(url: str | None) -> None:
    """Open the store at `url` (postgresql://...) from now on; None or '' goes back to SQLite."""
    global _url
    if url:
        from edgeship.report import pgstore

        _url = pgstore.check_url(url)
    else:
        _url = None


def location(results: Path) -> str:
    """Where the store is, for messages: the SQLite file, or the URL without its password."""
    if _url is not None:
        from edgeship.report import pgstore

        return pgstore.redact(_url)
    return str(db_path(results))


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise EdgeshipError(f"{path} has schema version {version}, newer than this edgeship's {SCHEMA_VERSION}; "
                            f"update edgeship, or move the file aside to start a new store")
    for number, script in MIGRATIONS:
        if number <= version:
            continue
        # executescript would commit on its own; each statement runs inside one explicit transaction instead
        connection.execute("BEGIN IMMEDIATE")
        # read again under the write lock: another process (a second `invoke report`) may have
        # migrated between the first read and the lock
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if number <= version:
            connection.execute("COMMIT")
            continue
        try:
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


def _store_error(path: Path, error: sqlite3.Error) -> EdgeshipError:
    text = str(error)
    if "locked" in text or "busy" in text:
        return EdgeshipError(f"{path} is locked by another process (waited {LOCK_TIMEOUT_S:g} s: {text}); let it finish (another "
                             f"`invoke report` or main job?) and run this again")
    return EdgeshipError(f"{path} is not a readable edgeship results store ({text}); move it aside (mv {path} {path}.damaged) "
                         f"and import the runs again with `invoke report`")


@contextlib.contextmanager
def connect(results: Path) -> Iterator[sqlite3.Connection]:
    """The store of `results` (created, or migrated to the current schema, on first use). Any
    database error inside (a damaged or truncated file, one that is not a database, a lock held
    too long) is one EdgeshipError line naming the file and the fix. With a PostgreSQL URL set
    (use(), `--store postgresql://...`) the store is that database instead, for every results folder."""
    if _url is not None:
        from edgeship.report import pgstore

        with pgstore.connect(_url, LOCK_TIMEOUT_S, pgstore.Schema(MIGRATIONS, SCHEMA_VERSION, _statements)) as pg:
            yield pg  # type: ignore[misc]  # sqlite3.Connection's execute/fetch, as store.py uses them
        return
    path = db_path(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), never opened behind our back
        connection = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as error:
        raise _store_error(path, error) from None
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        _migrate(connection, path)
        yield connection
    except sqlite3.Error as error:
        raise _store_error(path, error) from None
    finally:
        connection.close()


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


# --- reading a run folder -------------------------------------------------------------------


def run_metadata(images: dict | None = None, repo: Path | None = None) -> dict:
    """What the main job should put under report.json's "meta": the checkout, this controller and
    the images used. The controller's arch and kernel tell simulated and emulated boards apart."""
    from edgeship.paths import REPO_ROOT

    repo = repo or REPO_ROOT
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                timeout=GIT_TIMEOUT_S).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=GIT_TIMEOUT_S).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        # not a git checkout (an unpacked release), or git hung (a network file system): the run simply has no commit
        pass
    return {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": {"commit": commit, "dirty": dirty},
        "controller": {"host": socket.gethostname(), "arch": platform.machine(), "kernel": platform.release(), "cpus": os.cpu_count()},
        "images": dict(images or {}),
    }


@dataclass
class RunRecords:
    """Everything one run folder holds, read and checked, not yet written."""

    run: dict
    boards: list[dict] = field(default_factory=list)
    conversions: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    benches: list[dict] = field(default_factory=list)
    demos: list[dict] = field(default_factory=list)

    def rows(self) -> list[tuple[str, dict]]:
        return [(table, row) for table in RECORD_TABLES for row in getattr(self, table)]


def read_result_file(path: Path, skipped: list) -> dict | None:
    """A JSON object from a file a run (or a board) left, or None with the file and why in `skipped`:
    a link or a special file, a file over MAX_FILE_BYTES, not UTF-8, cut off, nested past the
    parser's depth, or not an object (read by files.read_json_object, the one reader of such files)."""
    try:
        return read_json_object(path, MAX_FILE_BYTES, "result file")
    except UnreadableFile as error:
        skipped.append([str(path), _why_unread(error, path)])
        return None


def _why_unread(error: UnreadableFile, path: Path) -> str:
    if error.problem == "too big":
        return f"{path.lstat().st_size / 1e6:.0f} MB, over the {MAX_FILE_BYTES >> 20} MB a result file may have: not read"
    if error.problem == "too deep":
        return "JSON nested deeper than a result file is: not read"
    if error.problem == "not an object":
        return "not a JSON object"
    if error.cause is not None:  # a file cut off by a killed run among them: left out, the run marked incomplete
        return f"not whole JSON ({type(error.cause).__name__}: {str(error.cause)[:80]})"
    return "not a regular file (a link or a special file): not read"


def _strings(value) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _object(value) -> dict:
    """An optional nested object of a result file: {} when absent or of another type."""
    return value if isinstance(value, dict) else {}


def board_name(path: Path, document: dict | None, notes: list[str]) -> str | None:
    """Which board a result file is from: its file name (`<host>.json`, `demo/<host>/`) decides,
    as Ansible named it; a `host` field that says otherwise is noted, never obeyed (it had filed
    one board's rows under another). None when the name is not a board name."""
    host = path.stem if path.suffix == ".json" and path.name != "stats.json" else path.parent.name
    if not (names.is_safe(host) or _is_address(host)):
        return None
    claimed = (document or {}).get("host")
    if claimed is not None and claimed != host:
        notes.append(f"{path} says host {str(claimed)[:80]!r}: its rows are filed under {host}, as its file name says")
    return host


def _is_address(host: str) -> bool:
    """Whether an inventory host is an IP address (an IPv6 one is no name-rule name: it has ':'),
    its zone (fe80::1%eth0), if any, a safe name: ipaddress takes any text there."""
    address, _, zone = host.partition("%")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return not zone or names.is_safe(zone)


def _started_from_run_id(run_id: str) -> str | None:
    try:
        return dt.datetime.strptime(run_id, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).isoformat(timespec="seconds")
    except ValueError:
        return None


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


ArtifactKey = tuple[str, str, str, str]


def artifact_key(target, quant, model, sha256) -> ArtifactKey | None:
    """Which artifact a row is about: its target, quant, model and bytes together. The bytes
    alone name two targets' artifacts when they are the same file (jetson fp16 ships the ONNX
    that onnx fp32 ships), and a row matched by them took the other target's backend and image.
    None when a part is missing: such a row matches nothing."""
    parts = (target, quant, model, sha256)
    return parts if all(isinstance(part, str) and part for part in parts) else None


def _manifests(run_dir: Path, report: dict | None, skipped: list) -> dict[ArtifactKey, dict]:
    """Artifact manifests by artifact_key: this run's deploy-artifacts/ links, and the folders its conversion rows name."""
    folders = sorted((run_dir / "deploy-artifacts").glob("*/manifest.json")) if (run_dir / "deploy-artifacts").is_dir() else []
    for row in (report or {}).get("conversions", []):
        if isinstance(row.get("artifact"), str) and row["artifact"]:
            folders.append(Path(row["artifact"]) / "manifest.json")
    found = {}
    for path in folders:
        if not path.is_file():
            continue  # an artifact deleted since: its row still carries the figures
        manifest = read_result_file(path, skipped)
        if not manifest:
            continue
        key = artifact_key(manifest.get("target"), _object(manifest.get("options")).get("quant"), manifest.get("model"),
                           _object(manifest.get("artifact")).get("sha256"))
        if key:
            found[key] = manifest
    return found


def _model_from_folder(name: str) -> str:
    return name.rsplit("-", 3)[0] if name.count("-") >= 3 else name


def _conversion(run_id: str, row: dict, manifest: dict | None) -> dict:
    for key in ("model", "target", "quant"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"its {key} is {str(row.get(key))[:40]!r}, not a name")
    manifest = manifest or {}
    options = dict(manifest.get("options") or {})
    input_shapes = options.pop("input_shapes", {})
    options.pop("quant", None)
    labelled = (manifest.get("accuracy") or {}).get("labelled") or {}
    image = manifest.get("image") or {}
    return {
        "run_id": run_id, "artifact": Path(row["artifact"]).name if row.get("artifact") else f"{row['model']}-{row['target']}-{row['quant']}",
        "model": row["model"], "target": row["target"], "quant": row["quant"],
        "options": _json(options), "input_shapes": _json(input_shapes),
        "task": row.get("task") or (manifest.get("task") or {}).get("name"),
        "artifact_sha256": row.get("sha256") or (manifest.get("artifact") or {}).get("sha256"),
        "source_sha256": (manifest.get("source") or {}).get("sha256"), "cache_key": manifest.get("cache_key"),
        "size_bytes": row.get("size_bytes"), "cosine_min": row.get("cosine_min"), "snr_db_min": row.get("snr_db_min"),
        "metric": row.get("metric"), "metric_vs_fp32": row.get("metric_vs_fp32"),
        "label_metric": row.get("label_metric"), "labelled_fp32": row.get("labelled_fp32"), "labelled_converted": row.get("labelled_converted"),
        "labelled_samples": labelled.get("samples"),
        "accuracy_passed": _bool(row.get("accuracy_passed")), "convert_s": row.get("seconds"),
        "image_tag": image.get("tag"), "image_id": image.get("id"), "toolchain": _json(manifest.get("toolchain") or {}),
        "record": _json(row),
    }


def _bool(value) -> int | None:
    return None if value is None else int(bool(value))


def _controller_bench(run_id: str, row: dict, manifest: dict | None) -> dict | None:
    """The main job's own check and short benchmark of an artifact on this machine's CPU, as a bench row."""
    if row.get("host_mean_ms") is None:
        return None
    note = row.get("host_note")
    # main_job labels a run on another backend's CPU provider "on <backend> CPU" (a jetson artifact's own ONNX)
    fallback = bool(note and note.startswith("on "))
    return {
        "run_id": run_id, "board": CONTROLLER, "model": row["model"], "target": row["target"], "quant": row["quant"],
        "requested_target": row["target"], "requested_quant": row["quant"],
        "backend": note.split()[1] if fallback and note else (manifest or {}).get("runtime_backend") or _target_backend(row["target"]),
        "accelerator": "cpu",
        "artifact_sha256": row.get("sha256"), "source": "controller", "fallback": int(fallback), "fallback_reason": note if fallback else None,
        "runs": row.get("host_runs"), "mean_ms": row["host_mean_ms"], "std_ms": None, "min_ms": None, "p10_ms": row.get("host_p10_ms"),
        "p50_ms": row.get("host_p50_ms"),
        "p90_ms": row.get("host_p90_ms"), "p99_ms": None, "max_ms": None,
        "fps": 1000.0 / row["host_mean_ms"] if row["host_mean_ms"] else None, "throughput_fps": None, "throughput_instances": None,
        "peak_rss_kb": None, "power_w": None, "power_sensor": None, "load_s": None, "first_inference_s": None, "threads": 1,
        "note": note, "record": _json({key: value for key, value in row.items() if key.startswith("host_")}),
    }


def _target_backend(target: str) -> str | None:
    """The runtime backend a target's artifacts use (an artifact deleted since the run has no manifest to say)."""
    import targets

    known = targets.TARGETS.get(target)
    return known.runtime_backend if known else None


def board_kind(detect: dict, controller: dict) -> tuple[bool, bool]:
    """(simulated, emulated) for a board from its detect record and the controller's metadata.

    A simulated board is a container on the controller, so it reports the controller's own
    kernel; one of another architecture on that kernel can only run under qemu-user. Without the
    controller's metadata (older runs), a board whose model calls itself simulated and whose
    arch differs from the controller's (else this machine's) counts as emulated."""
    board_model = str((detect.get("board") or {}).get("model", ""))
    arch, kernel = detect.get("arch"), detect.get("kernel")
    controller_arch = controller.get("arch") or platform.machine()
    if controller.get("kernel"):
        simulated = kernel == controller["kernel"] or "simulated" in board_model.lower()
    else:
        simulated = "simulated" in board_model.lower()
    return simulated, bool(simulated and arch and arch != controller_arch)


def _power(power: dict | None) -> tuple[float | None, str | None]:
    """One figure for the table: the board's input rail where a sensor names it (VDD_IN, total), else its
    largest sensor (sub-rails are part of the input rail: adding them up would count twice)."""
    readings = (power or {}).get("mean_w") or {}
    if not readings:
        return None, None
    total = [name for name in readings if "vdd_in" in name.lower() or "total" in name.lower()]
    name = total[0] if total else max(readings, key=lambda key: readings[key])
    return float(readings[name]), name


def _bench(run_id: str, host: str, result: dict) -> dict | None:
    bench = result.get("bench") or {}
    steady = bench.get("steady") or {}
    if not steady.get("mean_ms"):
        return None
    identity = bench.get("artifact") or {}
    fallback = bench.get("fallback") or None
    requested = (fallback or {}).get("requested") or identity
    multi = [run for run in (bench.get("multi_instance") or []) if run.get("throughput_fps")]
    best = max(multi, key=lambda run: run["throughput_fps"]) if multi else None
    power_w, sensor = _power(bench.get("power"))
    return {
        "run_id": run_id, "board": host, "model": result["model"],
        "target": identity.get("target") or "-", "quant": identity.get("quant") or "-",
        "requested_target": requested.get("target"), "requested_quant": requested.get("quant"),
        "backend": bench.get("backend"), "accelerator": bench.get("accelerator"), "artifact_sha256": identity.get("artifact_sha256"),
        "source": "board", "fallback": int(bool(fallback)),
        "fallback_reason": (fallback or {}).get("reason") or (result.get("note") if fallback else None),
        "runs": steady.get("runs"), "mean_ms": steady.get("mean_ms"), "std_ms": steady.get("std_ms"), "min_ms": steady.get("min_ms"),
        "p10_ms": steady.get("p10_ms"), "p50_ms": steady.get("p50_ms"), "p90_ms": steady.get("p90_ms"), "p99_ms": steady.get("p99_ms"),
        "max_ms": steady.get("max_ms"), "fps": steady.get("fps"),
        "throughput_fps": best["throughput_fps"] if best else None, "throughput_instances": best["instances"] if best else None,
        "peak_rss_kb": (bench.get("memory") or {}).get("peak_kb"), "power_w": power_w, "power_sensor": sensor,
        "load_s": bench.get("load_s"), "first_inference_s": bench.get("first_inference_s"), "threads": (bench.get("options") or {}).get("threads"),
        "note": result.get("note"), "record": _json({**bench, "board_check": _check_verdict(result)}),
    }


def _check_verdict(result: dict) -> dict:
    """The board's check of this bench's artifact, kept with the bench: the checks table keeps one per
    board and model, and a board may run a model on several runtimes (edgeship_extra_targets)."""
    check = result.get("check")
    if not isinstance(check, dict):
        return {"passed": None, "artifact_sha256": None}
    return {"passed": check.get("passed"), "artifact_sha256": (check.get("artifact") or {}).get("artifact_sha256")}


def _check(run_id: str, host: str, result: dict) -> dict | None:
    check = result.get("check") or {}
    if "passed" not in check:
        return None
    identity = check.get("artifact") or {}
    fallback = check.get("fallback") or None
    return {
        "run_id": run_id, "board": host, "model": result["model"], "target": identity.get("target"), "quant": identity.get("quant"),
        "backend": check.get("backend"), "artifact_sha256": identity.get("artifact_sha256"),
        "passed": _bool(check.get("passed")), "integrity_passed": _bool((check.get("integrity") or {}).get("passed")),
        "task": check.get("task"), "samples": check.get("samples"), "metrics": _json(check.get("metrics") or {}),
        "failed": _json(check.get("failed") or []), "fallback": int(bool(fallback)), "fallback_reason": (fallback or {}).get("reason"),
        "record": _json(check),
    }


def _board(run_id: str, host: str, document: dict, controller: dict) -> dict:
    detect = document.get("detect") or {}
    simulated, emulated = board_kind(detect, controller)
    board = detect.get("board") or {}
    return {
        "run_id": run_id, "board": host, "board_model": board.get("model"), "compatible": _json(board.get("compatible") or []),
        "arch": detect.get("arch"), "kernel": detect.get("kernel"), "python": detect.get("python"),
        "available": _json(detect.get("available") or []), "runtimes": _json(detect.get("runtimes") or {}),
        "target": document.get("target"), "release_id": document.get("release_id"),
        "simulated": int(simulated), "emulated": int(emulated), "detect": _json(detect),
    }


def _pipeline_order(stages: dict, pipeline: list | None = None) -> dict:
    """The demo's stages in the order a frame goes through them (stats.json sorts its keys; newer
    demos write that order as "pipeline")."""
    from edgeship_runtime.demo.pipeline import TEXT_STAGES

    rank = {name: index for index, name in enumerate(pipeline or TEXT_STAGES)}
    return dict(sorted(stages.items(), key=lambda item: rank.get(item[0], len(rank))))


def _demo_scores(predictions: Path, truth: list | None, skipped: list) -> dict:
    """How well a text-reading demo read the run's video: {} without ground truth or predictions."""
    from edgeship.report.ocr import score_text_predictions

    if truth is None or not predictions.is_file():
        return {}
    try:
        return score_text_predictions(predictions, truth)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as error:
        # a truncated line of a killed demo, a malformed truth, a line nested past the parser's depth
        skipped.append([str(predictions), f"not scored ({type(error).__name__}: {str(error)[:80]})"])
        return {}


def _demo(run_id: str, host: str, stats: dict, conversions_by_artifact: dict[tuple, dict], scores: dict | None = None) -> dict:
    scores = scores or {}
    text_folder = Path(((stats.get("text_model") or {}).get("artifact") or {}).get("path") or "").name
    text_model = _model_from_folder(text_folder) if text_folder else None
    identity = stats.get("artifact") or {}
    folder = Path(identity.get("path") or "").name
    conversion = conversions_by_artifact.get((identity.get("target"), identity.get("quant"), identity.get("artifact_sha256")))
    end_to_end = stats.get("end_to_end") or {}
    frames = stats.get("frames") or {}
    return {
        "run_id": run_id, "board": host, "model": conversion["model"] if conversion else _model_from_folder(folder),
        "artifact": folder, "artifact_sha256": identity.get("artifact_sha256"), "target": identity.get("target"), "quant": identity.get("quant"),
        "backend": stats.get("backend"), "fallback": int(bool(stats.get("fallback") or (stats.get("text_model") or {}).get("fallback"))),
        "mode": stats.get("mode"),
        "source_kind": (stats.get("source") or {}).get("kind"), "task": stats.get("task"),
        "frames_captured": frames.get("captured"), "frames_processed": frames.get("processed"), "frames_dropped": frames.get("dropped"),
        "fps": stats.get("fps"), "e2e_mean_ms": end_to_end.get("mean_ms"), "e2e_p50_ms": end_to_end.get("p50_ms"),
        "e2e_p90_ms": end_to_end.get("p90_ms"), "bottleneck": (stats.get("bottleneck") or {}).get("stage"),
        "stages": json.dumps(_pipeline_order(stats.get("stages") or {}, stats.get("pipeline"))),
        "elapsed_s": stats.get("elapsed_s"), "error": stats.get("error"),
        "text_model": text_model, "boxes": (stats.get("detections") or {}).get("boxes"),
        "det_f1": scores.get("f1"), "char_accuracy": scores.get("char_accuracy"), "scored_frames": scores.get("frames"),
        "record": _json(stats),
    }


def read_run(run_dir: Path) -> RunRecords:
    """Read a run folder into records (nothing is written). Whatever is cut off or malformed is
    listed in run["skipped"] and the run is marked incomplete."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdgeshipError(f"{run_dir} is not a run folder; give results/<run-id> (see `ls results/`)")
    run_id = run_dir.name
    if not names.is_safe(run_id):
        raise EdgeshipError(f"run folder {run_dir} is not named by a run id ({names.NAME_RULE}); rename it, e.g. to "
                            f"{names.suggest(run_id)}")
    skipped: list[list[str]] = []
    notes: list[str] = []
    report = read_result_file(run_dir / "report.json", skipped) if (run_dir / "report.json").exists() else None
    if report is not None and not isinstance(report.get("conversions", []), list):
        skipped.append([str(run_dir / "report.json"), "its conversions are not a list: left out"])
        report = {**report, "conversions": []}
    if report is not None:
        rows = report.get("conversions", [])
        report = {**report, "conversions": [row for row in rows if isinstance(row, dict)]}
        if len(report["conversions"]) != len(rows):
            skipped.append([str(run_dir / "report.json"), f"{len(rows) - len(report['conversions'])} conversion rows are not objects: left out"])
    meta = _object((report or {}).get("meta"))
    controller = _object(meta.get("controller"))
    manifests = _manifests(run_dir, report, skipped)
    records = RunRecords(run={})

    for row in (report or {}).get("conversions", []):
        try:
            key = artifact_key(row.get("target"), row.get("quant"), row.get("model"), row.get("sha256"))
            manifest = manifests.get(key) if key else None
            records.conversions.append(_conversion(run_id, row, manifest))
            controller_row = _controller_bench(run_id, row, manifest)
            if controller_row:
                records.benches.append(controller_row)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            skipped.append([f"{run_dir / 'report.json'} conversion {str(row.get('artifact', '?'))[:120]}",
                            f"malformed row ({type(error).__name__}: {str(error)[:80]})"])
    if any(row["board"] == CONTROLLER for row in records.benches):
        records.boards.append({
            "run_id": run_id, "board": CONTROLLER, "board_model": f"controller {controller.get('host') or ''} (1 thread)".replace("  ", " "),
            "compatible": "[]", "arch": controller.get("arch"), "kernel": controller.get("kernel"), "python": None, "available": '["cpu"]',
            "runtimes": "{}", "target": None, "release_id": None, "simulated": 0, "emulated": 0, "detect": None,
        })

    # a demo's stats name target, quant and bytes, not the model: the model is what they find
    conversions_by_artifact = {(row["target"], row["quant"], row["artifact_sha256"]): row for row in records.conversions if row["artifact_sha256"]}
    for path in sorted(run_dir.glob("*.json")):
        if path.name in NOT_BOARD_FILES or path.name.startswith("compare-"):
            continue
        document = read_result_file(path, skipped)
        if document is None:
            continue
        if not isinstance(document.get("results"), list):
            skipped.append([str(path), "no \"results\" list: not a bench.yml board file"])
            continue
        host = board_name(path, document, notes)
        if host is None:
            skipped.append([str(path), f"its name is not a board's ({names.NAME_RULE}, or an IP address): not read"])
            continue
        try:
            records.boards.append(_board(run_id, host, document, controller))
        except (TypeError, AttributeError, KeyError, ValueError) as error:  # valid JSON of the wrong shape
            skipped.append([str(path), f"not read ({type(error).__name__}: {str(error)[:80]})"])
            continue
        for number, result in enumerate(document["results"]):
            if not isinstance(result, dict) or not isinstance(result.get("model"), str) or not result["model"]:
                skipped.append([f"{path} result {number}", "a result without a model"])
                continue
            try:
                rows = [row for row in (_check(run_id, host, result), _bench(run_id, host, result)) if row]
            except (TypeError, AttributeError, KeyError, ValueError) as error:
                skipped.append([f"{path} result {number}", f"not read ({type(error).__name__}: {str(error)[:80]})"])
                continue
            for row in rows:
                (records.checks if "passed" in row else records.benches).append(row)
    truth_file = run_dir / "demo" / DEMO_TRUTH
    truth = read_result_file(truth_file, skipped) if truth_file.is_file() else None
    for path in sorted(run_dir.glob("demo/*/stats.json")):
        stats = read_result_file(path, skipped)
        host = board_name(path, None, notes)
        if stats is not None and host is None:
            skipped.append([str(path), f"its folder's name is not a board's ({names.NAME_RULE}, or an IP address): not read"])
        elif stats is not None and host is not None:
            frames = (truth or {}).get("frames")
            scores = _demo_scores(path.parent / "predictions.jsonl", frames if isinstance(frames, list) else None, skipped)
            try:
                records.demos.append(_demo(run_id, host, stats, conversions_by_artifact, scores))
            except (TypeError, AttributeError, KeyError, ValueError) as error:
                skipped.append([str(path), f"not read ({type(error).__name__}: {str(error)[:80]})"])

    images = dict(_object(meta.get("images")))
    for manifest in manifests.values():
        image = _object(manifest.get("image"))
        if isinstance(image.get("tag"), str) and image["tag"]:
            images.setdefault(image["tag"], image.get("id"))
    records.run = {
        "run_id": run_id, "started": meta.get("started") or _started_from_run_id(run_id),
        "git_commit": (meta.get("git") or {}).get("commit"), "git_dirty": _bool((meta.get("git") or {}).get("dirty")),
        "controller": controller.get("host"), "controller_arch": controller.get("arch"), "controller_kernel": controller.get("kernel"),
        "images": _json(images), "complete": int(report is not None and not skipped), "skipped": _json(skipped),
        "fleet_exit": (report or {}).get("fleet_exit"), "notes": _json([*_strings((report or {}).get("notes")), *notes]),
        "timings": _json({phase: span for phase, span in _object((report or {}).get("timings")).items() if isinstance(span, dict)}),
    }
    if report is None and not (run_dir / "report.json").is_file():
        skipped.append([str(run_dir / "report.json"), "missing: the main job had not finished (or this run came from bench.yml alone)"])
        records.run["skipped"] = _json(skipped)
    for table in RECORD_TABLES:
        setattr(records, table, [_clean(row) for row in getattr(records, table)])
    _dedupe(records)
    return records


# Columns the schema declares numeric: a board's figure of another type (a string, NaN, an
# integer past SQLite's 64 bits) is stored as NULL, "not measured", never as a figure.
NUMERIC_COLUMNS = frozenset(re.findall(r"(\w+) (?:REAL|INTEGER)", "\n".join(script for _, script in MIGRATIONS)))


def _clean(row: dict) -> dict:
    """A record's values as SQLite stores them: numbers where the schema says so, text elsewhere."""
    clean = {}
    for column, value in row.items():
        if column in NUMERIC_COLUMNS:
            if isinstance(value, bool):
                value = int(value)
            elif isinstance(value, int):
                value = value if -(1 << 63) <= value < (1 << 63) else None
            elif isinstance(value, float):
                value = value if math.isfinite(value) else None
            else:
                value = None
        elif value is not None and not isinstance(value, str):
            value = _json(value)
        clean[column] = value
    return clean


def _dedupe(records: RunRecords) -> None:
    """One row per primary key, the last one read winning (as INSERT OR REPLACE would), so that the
    progress count and the rows written agree."""
    keys = {"boards": ("board",), "conversions": ("artifact",), "checks": ("board", "model"),
            "benches": ("board", "model", "target", "quant"), "demos": ("board",)}
    for table, key in keys.items():
        unique = {tuple(row[k] for k in key): row for row in getattr(records, table)}
        setattr(records, table, list(unique.values()))


def _fingerprint(records: RunRecords) -> str:
    payload = _json({"importer": IMPORTER_VERSION, "run": records.run, **{table: getattr(records, table) for table in RECORD_TABLES}})
    return hashlib.sha256(payload.encode()).hexdigest()


# Columns a conversion row takes from its artifact's manifest. An artifact deleted since the
# run's first import leaves its row without them: a re-import keeps what the store had.
MANIFEST_COLUMNS = ("options", "input_shapes", "source_sha256", "cache_key", "image_tag", "image_id", "toolchain", "labelled_samples")


def _keep_manifest_figures(connection: sqlite3.Connection, records: RunRecords) -> None:
    stored = {row["artifact"]: dict(row) for row in
              connection.execute("SELECT * FROM conversions WHERE run_id = ?", (records.run["run_id"],))}
    for row in records.conversions:
        before = stored.get(row["artifact"])
        if before and row["image_tag"] is None and before["image_tag"] is not None:
            row.update({column: before[column] for column in MANIFEST_COLUMNS})
    if stored:
        images = json.loads(records.run["images"])
        old = connection.execute("SELECT images FROM runs WHERE run_id = ?", (records.run["run_id"],)).fetchone()
        records.run["images"] = _json({**json.loads(old["images"] if old else "{}"), **images})


# --- writing --------------------------------------------------------------------------------


def _insert(connection: sqlite3.Connection, table: str, row: dict) -> None:
    columns = list(row)
    connection.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                       [row[column] for column in columns])


def import_run(results: Path, run_dir: Path, progress: Progress | None = None, force: bool = False) -> dict:
    """Import one run folder into `results/edgeship.db`, replacing that run's earlier rows.

    Idempotent (a second import of the same folder writes nothing, and a changed folder, or
    `force`, replaces its rows); all-or-nothing (one transaction: a process killed half-way
    leaves the store as it was). `progress(table, done, total)` is called after each row is
    written. Returns {"run_id", "rows": {table: count}, "complete", "skipped", "unchanged"}."""
    records = read_run(Path(run_dir))
    fingerprint = _fingerprint(records)
    counts = {table: len(getattr(records, table)) for table in RECORD_TABLES}
    summary = {"run_id": records.run["run_id"], "rows": counts, "complete": bool(records.run["complete"]),
               "skipped": json.loads(records.run["skipped"]), "unchanged": False}
    with connect(results) as connection:
        stored = connection.execute("SELECT fingerprint FROM runs WHERE run_id = ?", (records.run["run_id"],)).fetchone()
        if stored and stored["fingerprint"] == fingerprint and not force:
            summary["unchanged"] = True
            return summary
        with transaction(connection):
            _keep_manifest_figures(connection, records)
            rows = records.rows()
            run = {**records.run, "fingerprint": fingerprint, "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            # an upsert, not a delete: the run's tags survive a re-import
            columns = list(run)
            connection.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
                               f"ON CONFLICT(run_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns if c != 'run_id')}",
                               [run[c] for c in columns])
            for table in RECORD_TABLES:
                connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run["run_id"],))
            for done, (table, row) in enumerate(rows, 1):
                _insert(connection, table, row)
                if progress:
                    progress(table, done, len(rows))
    return summary


def run_folders(results: Path) -> list[Path]:
    """Run folders under `results`, oldest first: folders holding a report.json or a board's <host>.json."""
    folders = []
    for folder in sorted(Path(results).iterdir()) if Path(results).is_dir() else []:
        if folder.is_dir() and names.is_safe(folder.name) and ((folder / "report.json").is_file() or
                                any(p.name not in NOT_BOARD_FILES and not p.name.startswith("compare-") for p in folder.glob("*.json"))):
            folders.append(folder)
    return folders


def sync(results: Path, progress: Progress | None = None) -> list[dict]:
    """Import every run folder under `results` (unchanged ones cost a read and no write)."""
    return [import_run(results, folder, progress) for folder in run_folders(results)]


def run_ids(results: Path) -> list[str]:
    with connect(results) as connection:
        return [row["run_id"] for row in connection.execute("SELECT run_id FROM runs ORDER BY run_id")]


def resolve_run(results: Path, name: str | None) -> str:
    """A run id from a run id, a tag, or None (the newest run)."""
    if name is not None:
        check_run_name(name, "run id or tag")
    if _url is None and not db_path(results).is_file():  # asked to read: no empty store is made on the way
        raise EdgeshipError(f"{results} holds no run yet (no {DB_NAME} there); run `./dev main` (or `invoke fleet.bench`) first, "
                            f"or pass --results DIR")
    with connect(results) as connection:
        if name is None:
            row = connection.execute("SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
            if row is None:
                raise EdgeshipError(f"{location(results)} holds no run yet; run `./dev main` (or `invoke fleet.bench`) first")
            return check_run_name(row["run_id"], f"the newest run id in {location(results)}")
        row = connection.execute("SELECT run_id FROM runs WHERE run_id = ?", (name,)).fetchone() or \
            connection.execute("SELECT run_id FROM tags WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r["run_id"] for r in connection.execute("SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 5")]
            tags = [r["name"] for r in connection.execute("SELECT name FROM tags ORDER BY name")]
            raise EdgeshipError(f"no run or tag named {name!r} in {location(results)}; recent runs: {', '.join(known) or 'none'}; "
                                f"tags: {', '.join(tags) or 'none'}")
        return check_run_name(row["run_id"], f"the run id {location(results)} gives for {name}")


def check_run_name(name: str, what: str) -> str:
    """A run id or tag from the command line: a folder name under results/ by the one name rule."""
    try:
        return names.check(name, what, f"run ids are the folder names under results/ (`ls results/`), tags are names like {names.suggest(name)}")
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None


def previous_run(results: Path, run_id: str) -> str | None:
    with connect(results) as connection:
        row = connection.execute("SELECT run_id FROM runs WHERE run_id < ? ORDER BY run_id DESC LIMIT 1", (run_id,)).fetchone()
        return row["run_id"] if row else None


def set_tag(results: Path, name: str, run_id: str) -> None:
    """Name a run (e.g. `baseline`); a tag names one run at a time, so setting it again moves it."""
    with connect(results) as connection, transaction(connection):
        connection.execute("INSERT INTO tags (name, run_id, created) VALUES (?, ?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET run_id = excluded.run_id, created = excluded.created",
                           (name, run_id, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))


# --- reading the store back -----------------------------------------------------------------


def run_record(results: Path, run_id: str) -> dict:
    with connect(results) as connection:
        row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise EdgeshipError(f"run {run_id} is not in {location(results)}; import it with `invoke report {run_id}`")
        record = dict(row)
        record["tags"] = [r["name"] for r in connection.execute("SELECT name FROM tags WHERE run_id = ? ORDER BY name", (run_id,))]
    for key in ("images", "skipped", "notes", "timings"):
        record[key] = json.loads(record[key])
    return record


def table_rows(results: Path, table: str, run_id: str) -> list[dict]:
    if table not in RECORD_TABLES:
        raise ValueError(f"unknown table {table!r}; one of {', '.join(RECORD_TABLES)}")
    with connect(results) as connection:
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY rowid", (run_id,))]


def _labels(bench: dict, board: dict) -> list[str]:
    """Short labels shown with a row; the report's legend says what each means."""
    labels = []
    if board.get("emulated"):
        labels.append(f"emulated ({board.get('arch')} on qemu)")
    elif board.get("simulated"):
        labels.append("simulated board")
    if bench.get("fallback"):
        asked = f"{bench.get('requested_target')} {bench.get('requested_quant')}"
        labels.append(f"CPU fallback for {asked}" if bench.get("requested_target") not in (None, bench.get("target")) else "CPU fallback")
    if bench.get("source") == "controller":
        labels.append("controller CPU, 1 thread")
    if bench.get("runs") is not None and bench["runs"] < SAMPLE_RUNS:
        labels.append(f"{bench['runs']}-run sample")
    return labels


def comparison_rows(results: Path, run_id: str) -> list[dict]:
    """The seeds' comparison for one run: one row per model x board x (target, mode) that was
    benchmarked, then one per conversion nothing could run, sorted by model.

    Each row: model, task, board, board_model, arch, target, quant, backend, accelerator,
    labels (emulated / simulated / CPU fallback / controller / sample: shown with the row),
    emulated, simulated, fallback, source, runs, mean_ms, p50_ms, p90_ms, fps, throughput_fps,
    throughput_instances, peak_rss_mb, power_w, size_bytes, metric, metric_vs_fp32,
    label_metric, labelled_fp32, labelled_converted, accuracy_passed, convert_s, check_passed,
    input_shapes, artifact_sha256, published (reference figures for the same hardware, model
    and mode; empty unless they match: see reference_figures.matching) and speed_vs_fp32 (an
    int8/fp16 row's latency over its fp32 sibling's on the same board and backend, labelled when
    not faster: see speed.py)."""
    from edgeship.report.clocks import clock_labels
    from edgeship.report.reference_figures import matching
    from edgeship.report.speed import mark_speed_vs_fp32

    with connect(results) as connection:
        benches = [dict(r) for r in connection.execute("SELECT * FROM benches WHERE run_id = ?", (run_id,))]
        boards = {r["board"]: dict(r) for r in connection.execute("SELECT * FROM boards WHERE run_id = ?", (run_id,))}
        checks = {(r["board"], r["model"]): dict(r) for r in connection.execute("SELECT * FROM checks WHERE run_id = ?", (run_id,))}
        conversions = [dict(r) for r in connection.execute("SELECT * FROM conversions WHERE run_id = ?", (run_id,))]

        def conversion_of(bench: dict) -> dict | None:
            key = artifact_key(bench["target"], bench["quant"], bench["model"], bench.get("artifact_sha256"))
            for row in conversions:
                if key and artifact_key(row["target"], row["quant"], row["model"], row["artifact_sha256"]) == key:
                    return row
            if key:  # a bench-only run: the same artifact converted in an earlier run
                found = connection.execute("SELECT * FROM conversions WHERE target = ? AND quant = ? AND model = ? AND artifact_sha256 = ? "
                                           "ORDER BY run_id DESC LIMIT 1", key).fetchone()
                if found:
                    return dict(found)
            return next((row for row in conversions if (row["model"], row["target"], row["quant"]) ==
                         (bench["model"], bench["target"], bench["quant"])), None)

        rows = []
        ran = set()
        for bench in benches:
            board = boards.get(bench["board"], {})
            conversion = conversion_of(bench) or {}
            ran.add(conversion.get("artifact"))
            check = checks.get((bench["board"], bench["model"])) or {}
            if check and check.get("artifact_sha256") != bench["artifact_sha256"]:  # another runtime's check of the model
                verdict = json.loads(bench["record"] or "{}").get("board_check") or {}
                check = {"passed": _bool(verdict.get("passed")) if verdict.get("artifact_sha256") == bench["artifact_sha256"] else None}
            rows.append({
                "model": bench["model"], "task": conversion.get("task"), "board": bench["board"], "board_model": board.get("board_model"),
                "compatible": json.loads(board.get("compatible") or "[]"), "arch": board.get("arch"),
                "target": bench["target"], "quant": bench["quant"], "requested_target": bench["requested_target"],
                "requested_quant": bench["requested_quant"], "backend": bench["backend"], "accelerator": bench["accelerator"],
                "labels": _labels(bench, board) + clock_labels(bench.get("record")),
                "emulated": bool(board.get("emulated")), "simulated": bool(board.get("simulated")),
                "fallback": bool(bench["fallback"]), "source": bench["source"], "runs": bench["runs"],
                "mean_ms": bench["mean_ms"], "p50_ms": bench["p50_ms"], "p90_ms": bench["p90_ms"], "fps": bench["fps"],
                "throughput_fps": bench["throughput_fps"], "throughput_instances": bench["throughput_instances"],
                "peak_rss_mb": bench["peak_rss_kb"] / 1024 if bench["peak_rss_kb"] else None, "power_w": bench["power_w"],
                "size_bytes": conversion.get("size_bytes"), "metric": conversion.get("metric"), "metric_vs_fp32": conversion.get("metric_vs_fp32"),
                "label_metric": conversion.get("label_metric"), "labelled_fp32": conversion.get("labelled_fp32"),
                "labelled_converted": conversion.get("labelled_converted"), "accuracy_passed": conversion.get("accuracy_passed"),
                "convert_s": conversion.get("convert_s"),
                "check_passed": check.get("passed") if check else _controller_check(conversion),
                "input_shapes": json.loads(conversion.get("input_shapes") or "{}"), "artifact_sha256": bench["artifact_sha256"],
            })
        for conversion in conversions:
            if conversion["artifact"] in ran:
                continue
            note = json.loads(conversion["record"]).get("host_note")
            rows.append({
                "model": conversion["model"], "task": conversion["task"], "board": None, "board_model": None, "compatible": [], "arch": None,
                "target": conversion["target"], "quant": conversion["quant"], "requested_target": conversion["target"],
                "requested_quant": conversion["quant"], "backend": None, "accelerator": None,
                "labels": [f"not benchmarked{f' ({note})' if note else ''}"], "emulated": False, "simulated": False, "fallback": False,
                "source": None, "runs": None, "mean_ms": None, "p50_ms": None, "p90_ms": None, "fps": None, "throughput_fps": None,
                "throughput_instances": None,
                "peak_rss_mb": None, "power_w": None, "size_bytes": conversion["size_bytes"], "metric": conversion["metric"],
                "metric_vs_fp32": conversion["metric_vs_fp32"], "label_metric": conversion["label_metric"],
                "labelled_fp32": conversion["labelled_fp32"], "labelled_converted": conversion["labelled_converted"],
                "accuracy_passed": conversion["accuracy_passed"], "convert_s": conversion["convert_s"], "check_passed": None,
                "input_shapes": json.loads(conversion["input_shapes"] or "{}"), "artifact_sha256": conversion["artifact_sha256"],
            })
    for row in rows:
        row["published"] = [figure.as_dict() for figure in matching(row)]
    mark_speed_vs_fp32(rows)
    order = {CONTROLLER: "~"}  # the controller's rows after the boards'
    rows.sort(key=lambda r: (r["model"], r["board"] is None, order.get(r["board"] or "", r["board"] or ""), r["target"], r["quant"]))
    return rows


def _controller_check(conversion: dict) -> int | None:
    if not conversion:
        return None
    return _bool(json.loads(conversion["record"]).get("host_check_passed"))
