"""A project's conversions file (edgeship.toml): its matrix built and locked, and verified anywhere.

`invoke build` converts every entry (models x targets x modes x options), reusing the cache, and
writes conversions.lock beside the file; `invoke verify` converts every locked entry again in
fresh containers, caches bypassed, and names each output that differs, both hashes and the
input that changed. docs/conversions.md documents both files.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from edgeship.convert.inputs import source_sha256
from edgeship.convert.lockfile import Drift, compare, entry_record, read_lock, write_lock
from edgeship.convert.request import Request, find_target, resolve_options
from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from edgeship_runtime.files import atomic_write_text, sha256_file

LOCK_NAME = "conversions.lock"
VERIFY_FOLDER = "verify"  # under the artifacts root: verify's fresh conversions and report.json

# The schema, checked by hand rather than with a JSON-schema library: each mistake has to be
# one line naming the file, the table, the key and the fix, which generic validators do not say.
PROJECT_KEYS = {"artifacts": str, "lock": str, "store": str}
MODEL_KEYS = {"path": str, "sha256": str, "calibration": str, "eval": str, "labels": str, "preprocess": str, "task": str,
              "input_shapes": dict, "input_values": dict, "batch_axis": dict, "state": dict, "name": str}
MATRIX_KEYS = {"models": list, "targets": list, "quants": list, "options": dict, "suffix": str}
TOP_KEYS = {"project": dict, "models": dict, "matrix": list}


@dataclass(frozen=True)
class Model:
    key: str
    path: Path
    sha256: str
    calibration: Path | None = None
    eval: Path | None = None
    labels: Path | None = None
    preprocess: Path | None = None
    task: str | None = None  # a task name, or the path of a task JSON file
    input_shapes: tuple[str, ...] = ()  # NAME:D0,D1,...
    input_values: tuple[str, ...] = ()  # NAME=VALUE[,VALUE...]: frozen inputs (targets/freeze.py)
    batch_axes: tuple[str, ...] = ()  # NAME:AXIS or NAME:none (edgeship/convert/axes.py)
    state: tuple[str, ...] = ()  # OUTPUT:INPUT, an output fed back as an input at the next step
    name: str = ""  # what the artifacts call the model (default: its key)


@dataclass(frozen=True)
class Entry:
    name: str
    model: Model
    target: str
    quant: str
    options: dict[str, str] = field(default_factory=dict)

    def request(self, out: Path) -> Request:
        needs_calibration = self.quant in find_target(self.target).needs_calibration
        return Request(target=self.target, model=self.model.path, quant=self.quant,
                       calib=self.model.calibration if needs_calibration else None, eval=self.model.eval, labels=self.model.labels,
                       input_shapes=list(self.model.input_shapes), options=dict(self.options), out=out,
                       name=self.model.name or self.model.key, preprocess=self.model.preprocess, task=self.model.task,
                       input_values=list(self.model.input_values), batch_axes=list(self.model.batch_axes), state=list(self.model.state))


@dataclass(frozen=True)
class Project:
    config: Path
    root: Path  # paths in the file are relative to its folder
    artifacts: Path
    lock: Path
    models: dict[str, Model]
    entries: dict[str, Entry]
    store: str | None = None  # [project] store = "postgresql://...": the team's results store (report/pgstore.py)


def _fail(config: Path, where: str, message: str) -> EdgeshipError:
    return EdgeshipError(f"{config}: {where}: {message}")


def _check_keys(config: Path, where: str, table: dict, allowed: dict, required: tuple[str, ...] = ()) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise _fail(config, where, f"unknown key {key!r}; the keys are: {', '.join(allowed)} (docs/conversions.md)")
        expected = allowed[key]
        if not isinstance(value, expected):
            kind = {str: "a string", list: "a list", dict: "a table"}[expected]
            raise _fail(config, where, f"{key} must be {kind}, not {type(value).__name__} {value!r}")
    for key in required:
        if key not in table:
            raise _fail(config, where, f"{key} is missing; add {key} = ... (docs/conversions.md)")


def _existing(config: Path, root: Path, where: str, key: str, value: str, folder: bool = False) -> Path:
    path = (root / value).resolve()
    if not (path.is_dir() if folder else path.is_file()):
        kind = "folder" if folder else "file"
        raise _fail(config, where, f"{key} = {value!r}: no such {kind} ({path}); fix the path (relative to {root})")
    return path


def _shape_items(config: Path, where: str, shapes: dict) -> tuple[str, ...]:
    items = []
    for name, dims in shapes.items():
        if not isinstance(dims, list) or not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise _fail(config, where, f"input_shapes.{name} = {dims!r} is not a list of positive integers; write e.g. {name} = [1, 3, 224, 224]")
        items.append(f"{name}:{','.join(str(d) for d in dims)}")
    return tuple(items)


def _value_items(config: Path, where: str, values: dict) -> tuple[str, ...]:
    """input_values = {sr = 16000, w = [0.5, 0.25]} -> ("sr=16000", "w=0.5,0.25"); the model checks the rest."""
    items = []
    for name, value in values.items():
        listed = value if isinstance(value, list) else [value]
        if not listed or not all(isinstance(v, (bool, int, float)) for v in listed):
            raise _fail(config, where, f"input_values.{name} = {value!r} is not a number, a boolean or a list of them; "
                                       f"write e.g. {name} = 16000")
        items.append(f"{name}=" + ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in listed))
    return tuple(items)


def _axis_items(config: Path, where: str, axes: dict) -> tuple[str, ...]:
    """batch_axis = {state = 1, x = "none"} -> ("state:1", "x:none"); the model checks the rest."""
    items = []
    for name, axis in axes.items():
        if not (isinstance(axis, int) and not isinstance(axis, bool) and axis >= 0) and axis != "none":
            raise _fail(config, where, f"batch_axis.{name} = {axis!r} is not an axis index or \"none\"; write e.g. {name} = 1")
        items.append(f"{name}:{axis}")
    return tuple(items)


def _state_items(config: Path, where: str, pairs: dict) -> tuple[str, ...]:
    """state = {stateN = "state"} (output = the input it feeds) -> ("stateN:state",)."""
    for output, feeds in pairs.items():
        if not isinstance(feeds, str) or not feeds:
            raise _fail(config, where, f"state.{output} = {feeds!r} is not an input's name; write e.g. {output} = \"state\"")
    return tuple(f"{output}:{feeds}" for output, feeds in pairs.items())


# Model keys, names, suffixes and the entry names made of them become folder names
# (artifacts/verify/<entry>, artifacts/<name>-...) and the boards' release folders: the one name rule.
def _safe_name(config: Path, where: str, what: str, value: str) -> str:
    try:
        return names.check(value, what, f"e.g. {names.suggest(value)} (it names folders)")
    except names.UnsafeName as error:
        raise _fail(config, where, str(error)) from None


def _model(config: Path, root: Path, key: str, table: dict, check_sha: bool) -> Model:
    where = f"[models.{key}]"
    _safe_name(config, where, "the model's key", key)
    if not isinstance(table, dict):
        raise _fail(config, where, "must be a table with path and sha256")
    _check_keys(config, where, table, MODEL_KEYS, required=("path",))
    path = (root / table["path"]).resolve()
    if not path.exists():
        raise _fail(config, where, f"path = {table['path']!r}: no such model ({path}); fix the path (relative to {root})")
    actual = source_sha256(path)
    if "sha256" not in table:
        raise _fail(config, where, f"sha256 is missing; pin the model with sha256 = \"{actual}\" (its sha256 now)")
    declared = table["sha256"].lower()
    if len(declared) != 64 or any(c not in "0123456789abcdef" for c in declared):
        raise _fail(config, where, f"sha256 = {table['sha256']!r} is not 64 hex digits; write the output of `sha256sum {table['path']}`")
    if check_sha and actual != declared:
        raise _fail(config, where, f"{table['path']} has sha256 {actual}, not the declared {declared}: the model file was replaced; "
                                   f"restore it, or declare the new sha256 and run `invoke build`")
    files = {name: _existing(config, root, where, name, table[name]) for name in ("eval", "labels", "preprocess") if name in table}
    calibration = _existing(config, root, where, "calibration", table["calibration"], folder=True) if "calibration" in table else None
    task = table.get("task")
    if task is not None and task.endswith(".json"):
        task = str(_existing(config, root, where, "task", task))
    return Model(key=key, path=path, sha256=declared, calibration=calibration, eval=files.get("eval"), labels=files.get("labels"),
                 preprocess=files.get("preprocess"), task=task, input_shapes=_shape_items(config, where, table.get("input_shapes", {})),
                 input_values=_value_items(config, where, table.get("input_values", {})),
                 batch_axes=_axis_items(config, where, table.get("batch_axis", {})), state=_state_items(config, where, table.get("state", {})),
                 name=_safe_name(config, where, "name", table["name"]) if table.get("name") else "")


def _option_text(value) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _row_entries(config: Path, number: int, row: dict, models: dict[str, Model]) -> list[Entry]:
    where = f"[[matrix]] row {number}"
    if not isinstance(row, dict):
        raise _fail(config, where, "must be a table with models and targets")
    _check_keys(config, where, row, MATRIX_KEYS, required=("models", "targets"))
    for key in ("models", "targets", "quants"):
        if key in row and (not row[key] or not all(isinstance(item, str) for item in row[key])):
            raise _fail(config, where, f"{key} must be a non-empty list of names")
    for model in row["models"]:
        if model not in models:
            raise _fail(config, where, f"model {model!r} is not declared; declare [models.{model}] or use one of: {', '.join(models) or 'none'}")
    options = {key: _option_text(value) for key, value in row.get("options", {}).items()}
    modes = []
    for target_name in row["targets"]:
        try:
            target = find_target(target_name)
        except EdgeshipError as error:
            raise _fail(config, where, str(error)) from None
        for quant in row.get("quants", target.quantizations):
            if quant not in target.quantizations:
                raise _fail(config, where, f"target {target_name} does not offer quant {quant!r}; choose from: {', '.join(target.quantizations)}")
            try:
                resolve_options(target, quant, options)
            except EdgeshipError as error:
                raise _fail(config, where, f"{error} (a row's options apply to every mode it lists: split the row)") from None
            modes.append((target, quant))
    entries = []
    for model in row["models"]:  # model by model, so a model's entries are listed together
        for target, quant in modes:
            if quant in target.needs_calibration and models[model].calibration is None:
                raise _fail(config, where, f"{target.name} {quant} needs calibration, and [models.{model}] has none; "
                                           f"add calibration = \"DIR\" there, or leave {quant} out of this row's quants")
            suffix = [_safe_name(config, where, "suffix", row["suffix"])] if row.get("suffix") else []
            name = _safe_name(config, where, "the entry name", "-".join([model, target.name, quant, *suffix]))
            entries.append(Entry(name, models[model], target.name, quant, options))
    return entries


def project_store(config: Path) -> str | None:
    """[project] store of a conversions file, without checking the rest of it (`invoke report`
    reads only this): a postgresql:// URL, or None for the SQLite store in the results folder."""
    try:
        with open(config, "rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError, OSError) as error:
        raise EdgeshipError(f"{config} cannot be read for its [project] store ({type(error).__name__}); fix it, "
                            f"or pass --store") from None
    store = project.get("store") if isinstance(project, dict) else None
    if store is None:
        return None
    if not isinstance(store, str):
        raise _fail(config, "[project]", f"store is {type(store).__name__}, not a string; write store = \"postgresql://USER@HOST/DATABASE\"")
    if not store:
        return None
    from edgeship.store_url import check_url

    return check_url(store, f"{config}: [project] store")


def load_project(config: Path, check_sha: bool = True) -> Project:
    """Read and check edgeship.toml; every mistake is one EdgeshipError line."""
    if not config.is_file():
        raise EdgeshipError(f"{config} does not exist; write a conversions file (docs/conversions.md) or pass --config PATH")
    try:
        with open(config, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise EdgeshipError(f"{config} is not valid TOML ({error}); fix the syntax there") from None
    except UnicodeDecodeError as error:
        raise EdgeshipError(f"{config} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except RecursionError:
        raise EdgeshipError(f"{config} nests its arrays or tables too deeply to read; flatten it (docs/conversions.md)") from None
    except OSError as error:
        raise EdgeshipError(f"{config} cannot be read ({error.strerror}); check the file and its permissions") from None
    _check_keys(config, "top level", data, TOP_KEYS)
    if not data.get("models"):
        raise _fail(config, "top level", "no [models.NAME] table; declare each model with path = ... and sha256 = ...")
    if not data.get("matrix"):
        raise _fail(config, "top level", "no [[matrix]] row; add one with models = [...] and targets = [...]")
    root = config.resolve().parent
    project = data.get("project", {})
    _check_keys(config, "[project]", project, PROJECT_KEYS)
    if project.get("store"):
        from edgeship.store_url import check_url

        check_url(project["store"], f"{config}: [project] store")
    models = {key: _model(config, root, key, table, check_sha) for key, table in data["models"].items()}
    entries: dict[str, Entry] = {}
    for number, row in enumerate(data["matrix"], start=1):
        for entry in _row_entries(config, number, row, models):
            if entry.name in entries:
                raise _fail(config, f"[[matrix]] row {number}", f"entry {entry.name} is made by an earlier row too; "
                                                                f"drop it from one row, or give this row a suffix = \"...\"")
            entries[entry.name] = entry
    return Project(config=config, root=root, artifacts=(root / project.get("artifacts", "artifacts")).resolve(),
                   lock=(root / project.get("lock", LOCK_NAME)).resolve(), models=models, entries=entries,
                   store=project.get("store") or None)


def _select(project: Project, names: list[str]) -> list[Entry]:
    for name in names:
        if name not in project.entries:
            raise EdgeshipError(f"{project.config} has no entry {name!r}; its entries: {', '.join(project.entries)}")
    return [project.entries[name] for name in names] if names else list(project.entries.values())


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def shard_plan(project: Project, shard: str, plan_file: Path | None, artifacts: Path | None = None) -> tuple[int, dict]:
    """(K, the plan) of `--shard K/N`: from the plan file CI's plan job wrote, else computed here
    from the conversions file and the artifacts' build times (the same on every runner that has them)."""
    from edgeship.convert import shards

    index, count = shards.parse_shard(shard)
    if plan_file is not None:
        return index, shards.read_plan(plan_file, project, count)
    return index, shards.make_plan(project, count, shards.read_times((artifacts or project.artifacts) / shards.TIMES_NAME))


def build_all(config: Path, out: Path | None, entries: list[str], shard: str = "", plan_file: Path | None = None,
              lock_out: Path | None = None) -> None:
    """Convert the matrix (the cache reused), print a summary table, and write the lock: every
    entry's inputs, images, code hash and output hashes. Entries not converted now keep theirs.
    With `shard` ("K/N") only that share converts, into a partial lock (`invoke lock.merge`)."""
    from edgeship.convert import shards
    from edgeship.convert.run import convert
    from edgeship.images.engine import ensure_engine

    project = load_project(config)
    if shard and entries:
        raise EdgeshipError("--shard and --entries both choose the entries to build; pass one of them")
    root = out.resolve() if out else project.artifacts
    part = None
    if shard:
        index, plan = shard_plan(project, shard, plan_file, root)
        part = shards.part_record(plan, index)
        entries = part["entries"]
        lock_out = lock_out or shards.part_path(project.lock, index, plan["shards"])
        print(f"edgeship: shard {shard}: {len(entries)} entries ({', '.join(entries) or 'none'})", flush=True)
    selected = _select(project, entries) if entries or not part else []
    client = ensure_engine()
    lock_path = lock_out.resolve() if lock_out else project.lock
    previous = read_lock(project.lock) if project.lock.is_file() and entries and not part else {"entries": {}, "made_on": {}}
    locked = {name: record for name, record in previous["entries"].items() if name in project.entries}
    made_on = {name: record for name, record in previous.get("made_on", {}).items() if name in locked}
    rows, failed, measured, started_all = [], [], {}, time.monotonic()
    for number, entry in enumerate(selected, start=1):
        print(f"edgeship: [{number}/{len(selected)}] {entry.name}", flush=True)
        started = time.time()
        try:
            artifact = convert(entry.request(root), client=client)
        except Exception as error:  # the other entries still convert, and the lock keeps what did
            error = error if isinstance(error, EdgeshipError) else EdgeshipError(f"{type(error).__name__}: {error}")
            failed.append(f"{entry.name}: {error}")
            locked.pop(entry.name, None)
            made_on.pop(entry.name, None)
            rows.append([entry.name, "-", "-", "-", f"{time.time() - started:.1f} s", "FAILED", "-"])
            print(f"edgeship: [{number}/{len(selected)}] {entry.name}: FAILED: {error}", flush=True)
            continue
        seconds = time.time() - started
        reused = (artifact / "manifest.json").stat().st_mtime < started
        if not reused:
            measured[entry.name] = seconds
        locked[entry.name], made_on[entry.name] = entry_record(client, entry.request(root), find_target(entry.target), project.root, artifact)
        manifest = json.loads((artifact / "manifest.json").read_text())
        rows.append([entry.name, manifest["artifact"]["file"], _size(manifest["artifact"]["size"]),
                     "yes" if manifest["accuracy"]["passed"] else "NO", "cached" if reused else f"{seconds:.1f} s",
                     "bytes" if locked[entry.name]["outputs"]["bytes_reproducible"] else "outputs (see note)", artifact.name])
        print(f"edgeship: [{number}/{len(selected)}] {entry.name}: {'cached' if reused else f'converted in {seconds:.1f} s'}", flush=True)
    if part is not None:
        shards.write_part(lock_path, project.config, locked, made_on, part)
    else:
        write_lock(lock_path, project.config, locked, made_on)
    shards.record_times(root / shards.TIMES_NAME, measured)  # what `invoke plan` balances the next shards by
    print(_table(rows, ["entry", "artifact", "size", "within tolerance", "time", "locked", "folder"]))
    print(f"edgeship: {len(selected) - len(failed)} of {len(selected)} entries in {time.monotonic() - started_all:.1f} s; "
          f"{'partial lock' if part else 'lock'}: {lock_path} ({lock_path.stat().st_size / 1e3:.1f} kB, {len(locked)} entries)", flush=True)
    if failed:
        raise EdgeshipError(f"{len(failed)} of {len(selected)} entries did not convert and are not in the lock: {'; '.join(failed)}")


def _verify_entry(client, project: Project, entry: Entry, locked: dict, locked_here: dict | None, folder: Path) -> tuple[Drift, Path]:
    from edgeship.convert.run import convert

    shutil.rmtree(folder, ignore_errors=True)
    artifact = convert(entry.request(folder), client=client, fresh=True)
    now, now_here = entry_record(client, entry.request(folder), find_target(entry.target), project.root, artifact)
    return compare(entry.name, locked, now, locked_here, now_here), artifact


def verify_all(config: Path, entries: list[str], shard: str = "", plan_file: Path | None = None) -> int:
    """Convert every locked entry again in fresh containers (no cache read or written) and compare
    with the lock; one line per entry that drifted. Returns 1 when anything differs, else 0.
    The fresh conversions and report.json stay under <artifacts>/verify/ (what CI uploads)."""
    from edgeship.images.engine import ensure_engine

    project = load_project(config, check_sha=False)
    lock = read_lock(project.lock)
    report_name = "report.json"
    if shard:  # this runner's share of the plan; every share together verifies the whole lock
        if entries:
            raise EdgeshipError("--shard and --entries both choose the entries to verify; pass one of them")
        index, plan = shard_plan(project, shard, plan_file)
        entries = [name for name in plan["include"][index - 1]["entries"].split(",") if name]
        report_name = f"report.part-{index}-of-{plan['shards']}.json"
        print(f"edgeship: verify shard {shard}: {', '.join(entries) or 'no entries'}", flush=True)
    selected = _select(project, entries) if entries or not shard else []
    problems: list[str] = []
    report: dict = {"lock": str(project.lock), "lock_sha256": sha256_file(project.lock), "entries": {}}
    # A source that is not the file the conversions file declares is named once, and its
    # entries are not converted: their inputs are not the project's.
    replaced = set()
    for model in {entry.model.key: entry.model for entry in selected}.values():
        actual = source_sha256(model.path)
        if actual != model.sha256:
            replaced.add(model.key)
            problems.append(f"{model.key}: source {model.path.name} {actual[:16]} now, {model.sha256[:16]} declared in "
                            f"{project.config.name} and locked: the model file was replaced; restore it, or declare the new sha256 "
                            f"and run `invoke build`")
    if not entries and not shard:
        for name in sorted(set(lock["entries"]) - set(project.entries)):
            problems.append(f"{name}: in {project.lock.name} but no longer in {project.config.name}; run `invoke build` to drop it")
    verify_root = project.artifacts / VERIFY_FOLDER
    client = ensure_engine()
    started_all = time.monotonic()
    for number, entry in enumerate(selected, start=1):
        if entry.model.key in replaced:
            report["entries"][entry.name] = {"status": "source replaced"}
            continue
        if entry.name not in lock["entries"]:
            problems.append(f"{entry.name}: in {project.config.name} but not in {project.lock.name}; run `invoke build` and commit the lock")
            report["entries"][entry.name] = {"status": "not locked"}
            continue
        print(f"edgeship: verify [{number}/{len(selected)}] {entry.name}", flush=True)
        started = time.monotonic()
        try:
            drift, artifact = _verify_entry(client, project, entry, lock["entries"][entry.name], lock.get("made_on", {}).get(entry.name),
                                            verify_root / entry.name)
        except Exception as error:  # it converted when it was locked: a difference, and the other entries still run
            error = error if isinstance(error, EdgeshipError) else EdgeshipError(f"{type(error).__name__}: {error}")
            problems.append(f"{entry.name}: the conversion failed now: {error}")
            report["entries"][entry.name] = {"status": "failed", "error": str(error)}
            print(f"edgeship: verify [{number}/{len(selected)}] {entry.name}: failed", flush=True)
            continue
        seconds = time.monotonic() - started
        status = "same" if drift.clean else ("stale lock" if not drift.files else "differs")
        report["entries"][entry.name] = {"status": status, "seconds": round(seconds, 1), "artifact": str(artifact),
                                         "files": drift.files, "inputs": drift.inputs, "note": drift.note}
        print(f"edgeship: verify [{number}/{len(selected)}] {entry.name}: {status} ({seconds:.1f} s)", flush=True)
        if not drift.clean:
            problems.append(drift.line())
    seconds_all = time.monotonic() - started_all
    report.update({"seconds": round(seconds_all, 1), "differences": problems})
    verify_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(verify_root / report_name, json.dumps(report, indent=2, sort_keys=True) + "\n")
    for line in problems:
        print(f"edgeship: verify: {line}", flush=True)
    verdict = f"{len(problems)} difference{'s' if len(problems) != 1 else ''}" if problems else "0 differences"
    print(f"edgeship: verified {len(selected)} entries against {project.lock.name} in {seconds_all:.1f} s: {verdict} "
          f"(fresh conversions and {report_name} in {verify_root})", flush=True)
    return 1 if problems else 0
