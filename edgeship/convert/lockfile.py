"""conversions.lock: for every entry of a project's conversions file, what it was made from (the
inputs' sha256, the images' lock and recipe, edgeship's conversion code) and what it made (every
output file's sha256), so that any machine can convert it again and say exactly what drifted.

The lock is JSON (sorted keys, two-space indent): Python reads TOML but writes none without a
third-party package, and a JSON lock diffs line by line like the TOML would. docs/conversions.md
describes every field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgeship import __version__
from edgeship.convert.cache import code_sha256
from edgeship.convert.clean import CLEAN_IMAGE
from edgeship.convert.inputs import calibration_digest, calibration_files, external_data_of, external_sha256, source_sha256
from edgeship.errors import EdgeshipError
from edgeship_runtime.files import atomic_write_text, sha256_file

LOCK_SCHEMA = 1

# Manifest fields that name this machine's images (their ids follow the base image, which is
# bootstrapped on each machine) or repeat the per-file hashes checked on their own.
MACHINE_FIELDS = ("cache_key", "files")
MACHINE_IMAGE_FIELDS = ("id", "tag")


@dataclass(frozen=True)
class Drift:
    """How an entry's fresh conversion differs from its lock entry."""

    entry: str
    files: list[dict] = field(default_factory=list)  # {"file", "locked", "now"} (sha256, or size for unreproducible files)
    inputs: list[dict] = field(default_factory=list)  # {"input", "locked", "now"}
    note: str = ""  # why the bytes differ when no input changed

    @property
    def clean(self) -> bool:
        return not self.files and not self.inputs

    def line(self) -> str:
        """One line: the entry, the (first) file with both hashes, and which input changed."""
        changed = "; ".join(f"{item['input']} ({_short(item['locked'])} in the lock, {_short(item['now'])} now)" for item in self.inputs)
        if not self.files:
            return (f"{self.entry}: every output is as locked, but an input changed: {changed}; the lock is stale: run `invoke build` "
                    f"and commit conversions.lock")
        first, rest = self.files[0], self.files[1:]
        text = f"{self.entry}: {first['file']} {_short(first['locked'])} in the lock, {_short(first['now'])} now"
        if rest:
            text += f" (and {len(rest)} more: {', '.join(item['file'] for item in rest)})"
        if self.inputs:
            return text + f"; changed input: {changed}"
        return text + f"; no input changed: {self.note}"


def _short(value) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:16]
    return "absent" if value is None else str(value)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def input_records(request, root: Path, needs_calibration: bool) -> dict:
    """The sha256 of every file a conversion reads, with its path relative to the project root.
    Calibration is hashed as the cache key hashes it (the samples' names and contents)."""
    records: dict[str, dict] = {"source": {"path": _relative(request.model, root), "sha256": source_sha256(request.model)}}
    external = external_data_of(request.model)
    if external:  # the weights beside an ONNX model: a retrained weights file is a changed input
        records["external_data"] = {"path": ", ".join(_relative(path, root) for path in external), "sha256": external_sha256(external)}
    if needs_calibration and request.calib is not None:
        files = calibration_files(request.calib)
        records["calibration"] = {"path": _relative(request.calib, root), "sha256": calibration_digest(files), "samples": len(files)}
    for name in ("eval", "labels", "preprocess"):
        path = getattr(request, name)
        if path is not None:
            records[name] = {"path": _relative(path, root), "sha256": sha256_file(path)}
    if request.task is not None:
        task = Path(request.task)
        records["task"] = ({"path": _relative(task, root), "sha256": sha256_file(task)} if task.suffix == ".json"
                           else {"name": request.task})
    return records


def recipe_sha256(spec) -> str:
    """An image's recipe: its rendered Dockerfile, lock and smoke tests, without the base image's
    id (the image key adds that id, which differs on every machine that bootstraps its base)."""
    from edgeship.images.build import recipe_sha256 as recipe  # image archives are named by it too

    return recipe(spec)


def base_recipe(client, base: str) -> str:
    """What a base image is made of: for a debootstrapped one, its suite, variant, architecture and
    packages (from the labels edgeship.images.base puts on it, the same on every machine that
    bootstraps it); for any other image (BASE_IMAGE), its reference."""
    from edgeship.images.base import LABEL_PREFIX

    labels = client.images.get(base).labels or {}
    if f"{LABEL_PREFIX}.suite" not in labels:
        return base
    suite, variant, arch, include = (labels.get(f"{LABEL_PREFIX}.{key}", "?") for key in ("suite", "variant", "arch", "include"))
    return f"debootstrap {suite}/{variant} {arch} {include}"


def image_records(client, names: list[str]) -> tuple[dict, dict]:
    """({name: lock sha256, recipe, base recipe}, {name: this machine's image tag and base id}) of
    the images a conversion used (the target's, and the graph clean-up's for ONNX sources)."""
    from edgeship.images.build import resolve
    from edgeship.images.locks import load_spec

    portable, here = {}, {}
    for name in sorted(set(names)):
        spec = load_spec(name)
        tag, _key, base, base_id = resolve(client, spec)
        portable[name] = {"lock_sha256": spec.lock_sha256(), "recipe_sha256": recipe_sha256(spec), "base": base_recipe(client, base)}
        here[name] = {"tag": tag, "base_id": base_id}
    return portable, here


def portable_manifest_sha256(manifest: dict) -> str:
    """sha256 of manifest.json without what names this machine's images or repeats the per-file
    hashes (canonical JSON): the rest (options, I/O, toolchain versions, accuracy, ...) must match."""
    kept = {key: value for key, value in manifest.items() if key not in MACHINE_FIELDS}
    kept["image"] = {key: value for key, value in manifest.get("image", {}).items() if key not in MACHINE_IMAGE_FIELDS}
    kept["artifact"] = {key: value for key, value in manifest.get("artifact", {}).items() if key != "sha256"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def output_records(target: str, artifact_dir: Path) -> dict:
    """sha256 of every output file the manifest lists (read from the disk, not the manifest), the
    portable manifest's, and the files the toolchain does not reproduce byte for byte."""
    import targets

    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    unreproducible_why = dict(targets.get(target).not_byte_reproducible)  # found by converting every mode twice (docs/conversions.md)
    files, unreproducible = {}, {}
    for name in sorted(manifest["files"]):
        why = unreproducible_why.get(Path(name).suffix)
        path = artifact_dir / name
        if why:
            unreproducible[name] = {"sha256": sha256_file(path), "size": path.stat().st_size, "checked": "size", "why": why}
        else:
            files[name] = sha256_file(path)
    record = {"files": files, "manifest_sha256": portable_manifest_sha256(manifest), "bytes_reproducible": not unreproducible}
    if unreproducible:
        record["not_byte_reproducible"] = unreproducible
    return record


def entry_record(client, request, plan_target, root: Path, artifact_dir: Path) -> tuple[dict, dict]:
    """The lock entry of one conversion, and what it was made with on this machine (not compared)."""
    from edgeship.convert.request import resolve_options

    needs_calibration = request.quant in plan_target.needs_calibration
    images = [plan_target.image] + ([CLEAN_IMAGE] if request.model.suffix.lower() == ".onnx" else [])
    portable, here = image_records(client, images)
    record = {
        "model": request.name,
        "target": plan_target.name,
        "quant": request.quant,
        "options": resolve_options(plan_target, request.quant, request.options),
        "input_shapes": sorted(request.input_shapes),
        "inputs": input_records(request, root, needs_calibration),
        "images": portable,
        "code_sha256": code_sha256(),
        "edgeship_version": __version__,
        "outputs": output_records(plan_target.name, artifact_dir),
    }
    if not record["outputs"]["bytes_reproducible"]:
        record["note"] = "; ".join(item["why"] for item in record["outputs"]["not_byte_reproducible"].values())
    return record, {"artifact": artifact_dir.name, "images": here}


def changed_inputs(locked: dict, now: dict) -> list[dict]:
    """Which inputs of an entry differ from the lock's: source, calibration, eval, labels,
    preprocess, task, options, input shapes, each image (lock, recipe, base), code, edgeship."""
    changes = []
    for name in sorted(set(locked["inputs"]) | set(now["inputs"])):
        before, after = locked["inputs"].get(name), now["inputs"].get(name)
        value_before = before and (before.get("sha256") or before.get("name"))
        value_after = after and (after.get("sha256") or after.get("name"))
        if value_before != value_after:
            where = (after or before or {}).get("path")
            changes.append({"input": f"{name} {where}" if where else name, "locked": value_before, "now": value_after})
    for name in ("options", "input_shapes"):
        if locked[name] != now[name]:
            changes.append({"input": name, "locked": json.dumps(locked[name], sort_keys=True), "now": json.dumps(now[name], sort_keys=True)})
    for image in sorted(set(locked["images"]) | set(now["images"])):
        before, after = locked["images"].get(image, {}), now["images"].get(image, {})
        for key, what in (("lock_sha256", "requirements.lock"), ("recipe_sha256", "recipe"), ("base", "base")):
            if before.get(key) != after.get(key):
                changes.append({"input": f"image {image} {what}", "locked": before.get(key), "now": after.get(key)})
                break  # the lock changes the recipe too: name the first cause only
    if locked["code_sha256"] != now["code_sha256"]:
        changes.append({"input": "code (targets/, runtime/edgeship_runtime/)", "locked": locked["code_sha256"], "now": now["code_sha256"]})
    if locked["edgeship_version"] != now["edgeship_version"]:
        changes.append({"input": "edgeship version", "locked": locked["edgeship_version"], "now": now["edgeship_version"]})
    return changes


def changed_outputs(locked: dict, now: dict) -> list[dict]:
    """Output files whose sha256 (or, for files the toolchain does not reproduce, size) differs;
    the model file first, the manifest last."""
    before, after = locked["outputs"], now["outputs"]
    differing = []
    for name in sorted(set(before["files"]) | set(after["files"])):
        if before["files"].get(name) != after["files"].get(name):
            differing.append({"file": name, "locked": before["files"].get(name), "now": after["files"].get(name)})
    loose_before, loose_after = before.get("not_byte_reproducible", {}), after.get("not_byte_reproducible", {})
    for name in sorted(set(loose_before) | set(loose_after)):
        size_before, size_after = loose_before.get(name, {}).get("size"), loose_after.get(name, {}).get("size")
        if size_before != size_after:
            differing.append({"file": f"{name} (size)", "locked": size_before, "now": size_after})
    if before["manifest_sha256"] != after["manifest_sha256"]:
        differing.append({"file": "manifest.json (without image ids)", "locked": before["manifest_sha256"], "now": after["manifest_sha256"]})
    differing.sort(key=lambda item: (not item["file"].startswith("model."), item["file"].startswith("manifest")))
    return differing


def compare(name: str, locked: dict, now: dict, locked_here: dict | None = None, now_here: dict | None = None) -> Drift:
    files, inputs = changed_outputs(locked, now), changed_inputs(locked, now)
    note = ""
    if files and not inputs:
        note = f"the {now['target']} toolchain ({now['quant']}) is not deterministic: the same inputs gave other bytes"
        bases = {image: (locked_here or {}).get("images", {}).get(image, {}).get("base_id") for image in now["images"]}
        moved = [image for image, base_id in bases.items() if base_id and base_id != (now_here or {}).get("images", {}).get(image, {}).get("base_id")]
        if moved:
            note += f" (this machine's base image of {', '.join(moved)} is not the locking machine's: the base may differ too)"
    return Drift(name, files, inputs, note)


def read_lock(path: Path) -> dict:
    if not path.is_file():
        raise EdgeshipError(f"{path} does not exist; run `invoke build` to convert the matrix and write it, then commit it")
    try:
        lock = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EdgeshipError(f"{path} is not valid JSON ({error}); restore it from version control or run `invoke build` again") from None
    if not isinstance(lock, dict) or lock.get("schema") != LOCK_SCHEMA or not isinstance(lock.get("entries"), dict):
        raise EdgeshipError(f"{path} is not a conversions lock of schema {LOCK_SCHEMA}; run `invoke build` to write it again")
    return lock


def write_lock(path: Path, config: Path, entries: dict, made_on: dict) -> Path:
    lock = {
        "schema": LOCK_SCHEMA,
        "config": config.name,
        "entries": dict(sorted(entries.items())),
        # What the lock was made with on the locking machine (image tags, base ids, artifact
        # folders): shown when a drift needs explaining, never compared.
        "made_on": dict(sorted(made_on.items())),
    }
    return atomic_write_text(path, json.dumps(lock, indent=2, sort_keys=True) + "\n")
