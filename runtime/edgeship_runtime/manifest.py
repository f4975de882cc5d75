"""manifest.json as the board runtime takes it: read once when an artifact opens, bounded in
size and nesting, and checked for every key and type the runtime reads. A damaged or crafted
manifest is one line naming the file, the key and the fix, never a traceback deep in a backend.

Every file the manifest names (the model, the references, a task's anchors) must be listed in
its `files` map with a sha256, and every listed file must be a regular file inside the artifact
folder, reached through no symbolic link (`files.confined`): an artifact reads only itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from edgeship_runtime import names
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import UnreadableFile, UnsafePath, confined, read_json_object

MANIFEST = "manifest.json"
MAX_BYTES = 16 << 20  # a real manifest is a few hundred kB at most (its ops table)
MAX_DEPTH = 64
MAX_FILES = 10_000
MAX_DIMS = 32  # numpy's own limit on an array's axes
MAX_SEQUENCES = 4096  # a reference's sequences (each at least one step of its bounded samples)
MAX_DIMENSION = (1 << 31) - 1  # one axis; what a tensor may hold in all is judged by its bytes where it is made
SHA256 = re.compile(r"[0-9a-f]{64}")
AGAIN = "convert the model again, or copy the artifact again if it was damaged on the way"


def read_manifest(folder: Path | str) -> dict:
    """The validated manifest of the artifact in `folder`, or ArtifactError (one line)."""
    folder = Path(folder)
    where = folder / MANIFEST
    if not folder.is_dir() or not os.path.lexists(where):
        raise ArtifactError(f"{folder} is not an edgeship artifact (no {MANIFEST}); pass the directory `invoke convert` printed")
    try:
        confined(folder, MANIFEST, "the manifest")
        manifest = read_json_object(where, MAX_BYTES, "the manifest", constants=False)
    except UnreadableFile as error:
        raise ArtifactError(f"{error}; {AGAIN}") from None
    return validate(manifest, where, folder)


def _shown(value) -> str:
    """A value as a message shows it: short JSON, or what it is."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = ""
    if text and len(text) <= 60:
        return text
    if isinstance(value, (dict, list)):
        return f"a {'JSON object' if isinstance(value, dict) else 'list'} of {len(value)} items"
    return text[:57] + "..." if text else f"a {type(value).__name__}"


class _Check:
    """What one manifest is checked with: every failure names the file and the key."""

    def __init__(self, where: Path):
        self.where = where

    def fail(self, key: str, problem: str, fix: str = AGAIN) -> ArtifactError:
        return ArtifactError(f"{self.where}: {key} {problem}; {fix}")

    def field(self, parent: dict, key: str, label: str, kind, what: str, required: bool = True):
        value = parent.get(key)
        if value is None:
            if required:
                raise self.fail(label, f"is missing (it must be {what})")
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)) or not isinstance(value, kind):
            raise self.fail(label, f"is {_shown(value)}, not {what}")
        return value

    def tensors(self, manifest: dict, key: str) -> None:
        specs = self.field(manifest, key, key, list, 'a list of tensors such as [{"name": "x", "shape": [1, 3, 224, 224]}]')
        if not specs:
            raise self.fail(key, "is empty; a model has at least one")
        seen = set()
        for index, spec in enumerate(specs):
            label = f"{key}[{index}]"
            if not isinstance(spec, dict):
                raise self.fail(label, f"is {_shown(spec)}, not an object with a name and a shape")
            name = self.field(spec, "name", f"{label}.name", str, "a tensor name")
            if name in seen:
                raise self.fail(label, f"repeats the tensor name {name!r}")
            seen.add(name)
            shape = self.field(spec, "shape", f"{label}.shape", list, "a list of dimensions")
            if len(shape) > MAX_DIMS or not all(_dimension(dim) for dim in shape):
                raise self.fail(f"{label}.shape", f"{_shown(shape)} is not a list of at most {MAX_DIMS} dimensions "
                                f"(sizes from 0 to {MAX_DIMENSION}, or a name or null for a dynamic one)")
            self.field(spec, "dtype", f"{label}.dtype", str, "a dtype name", required=False)
            axis = self.field(spec, "batch_axis", f"{label}.batch_axis", int, "the index of the batch axis, or null", required=False)
            if axis is not None and not 0 <= axis < len(shape):
                raise self.fail(f"{label}.batch_axis", f"is {axis}, outside the shape {_shown(shape)}")

    def state(self, manifest: dict) -> None:
        """A stateful model's pairs (an output that feeds an input at the next step) and its
        reference's sequences: what `check` carries, so names must be the model's own."""
        pairs = self.field(manifest, "state", "state", list, 'a list such as [{"output": "stateN", "input": "state"}]', required=False) or []
        names = {kind: {spec["name"] for spec in manifest[kind]} for kind in ("inputs", "outputs")}
        for index, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                raise self.fail(f"state[{index}]", f"is {_shown(pair)}, not an object with an output and an input")
            for end, kind in (("output", "outputs"), ("input", "inputs")):
                name = self.field(pair, end, f"state[{index}].{end}", str, f"one of the model's {kind}")
                if name not in names[kind]:
                    raise self.fail(f"state[{index}].{end}", f"names {_shown(name)}, which is not one of the model's {kind}")
        reference: dict = manifest["reference"] if isinstance(manifest.get("reference"), dict) else {}
        lengths = self.field(reference, "sequences", "reference.sequences", list, "a list of step counts", required=False)
        if lengths is not None and (not lengths or len(lengths) > MAX_SEQUENCES
                                    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths)):
            raise self.fail("reference.sequences", f"is {_shown(lengths)}, not a list of 1 to {MAX_SEQUENCES} positive step counts")

    def mapping(self, manifest: dict) -> None:
        io = self.field(manifest, "artifact_io", "artifact_io", dict, "an object", required=False) or {}
        mapping = self.field(io, "mapping", "artifact_io.mapping", dict, "an object", required=False) or {}
        for kind in ("inputs", "outputs"):
            entries = self.field(mapping, kind, f"artifact_io.mapping.{kind}", dict, "an object of tensor names", required=False) or {}
            for source, entry in entries.items():
                label = f"artifact_io.mapping.{kind}.{source}"
                if not isinstance(entry, dict):
                    raise self.fail(label, f"is {_shown(entry)}, not an object with the artifact's tensor name")
                self.field(entry, "name", f"{label}.name", str, "the artifact's tensor name")
                perm = self.field(entry, "perm", f"{label}.perm", list, "a permutation of the axes", required=False)
                if perm is not None and sorted(perm) != list(range(len(perm))):
                    raise self.fail(f"{label}.perm", f"{_shown(perm)} is not a permutation of 0..{len(perm) - 1}")
                normalize = self.field(entry, "normalize", f"{label}.normalize", dict, "an object with mean and std", required=False)
                for part in ("mean", "std") if normalize is not None else ():
                    values = self.field(normalize, part, f"{label}.normalize.{part}", list, "a list of numbers")
                    if not values or not all(_number(v) for v in values):
                        raise self.fail(f"{label}.normalize.{part}", f"{_shown(values)} is not a list of finite numbers")

    def files(self, manifest: dict, folder: Path) -> dict:
        listed = self.field(manifest, "files", "files", dict, "an object of file name -> sha256 (every file of the artifact)")
        if len(listed) > MAX_FILES:
            raise self.fail("files", f"lists {len(listed)} files, over the {MAX_FILES} an artifact may hold")
        for relative, digest in listed.items():
            if not isinstance(digest, str) or not SHA256.fullmatch(digest):
                raise self.fail(f"files[{relative!r}]", f"is {_shown(digest)}, not a sha256 (64 lowercase hex digits)")
            try:
                confined(folder, relative, f"{self.where}: files entry")
            except UnsafePath as error:
                missing = "does not exist" in str(error)
                raise ArtifactError(f"{error}; {'copy the whole artifact directory' if missing else AGAIN}") from None
        return listed

    def listed(self, listed: dict, relative, label: str) -> None:
        if not isinstance(relative, str) or relative not in listed:
            raise self.fail(label, f"names {_shown(relative)}, which is not listed in files with its sha256 "
                            "(an artifact reads only its own listed files)")


def _dimension(dim) -> bool:
    if isinstance(dim, int) and not isinstance(dim, bool):
        return -1 <= dim <= MAX_DIMENSION
    return dim is None or (isinstance(dim, str) and len(dim) <= 64)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _depth(value) -> int:
    """How deeply lists and objects nest in a parsed document (iteratively: no recursion to exhaust)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def validate(manifest, where: Path, folder: Path) -> dict:
    """`manifest` when it has every key the runtime reads, of the right type, and names only listed
    files inside `folder`; else ArtifactError naming `where`, the key and the fix."""
    check = _Check(where)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{where} holds a JSON {type(manifest).__name__}, not an object; {AGAIN}")
    if _depth(manifest) > MAX_DEPTH:
        raise ArtifactError(f"{where} nests lists and objects over {MAX_DEPTH} deep, which no manifest does; {AGAIN}")
    listed = check.files(manifest, folder)
    artifact = check.field(manifest, "artifact", "artifact", dict, 'an object such as {"file": "model.onnx", "sha256": "..."}')
    model_file = check.field(artifact, "file", "artifact.file", str, "the model's file name")
    check.listed(listed, model_file, "artifact.file")
    digest = check.field(artifact, "sha256", "artifact.sha256", str, "the model's sha256")
    if digest != listed[model_file]:
        raise check.fail("artifact.sha256", f"{_shown(digest)} differs from files[{model_file!r}] ({listed[model_file]})")
    check.field(manifest, "runtime_backend", "runtime_backend", str, "a backend name such as onnxruntime")
    for key in ("target", "model"):
        value = check.field(manifest, key, key, str, f"the {key}'s name", required=key == "target")
        if value is not None:
            try:
                names.check(value, f"{where}: {key}", AGAIN)
            except names.UnsafeName as error:
                raise ArtifactError(str(error)) from None
    options = check.field(manifest, "options", "options", dict, 'an object such as {"quant": "fp32"}')
    check.field(options, "quant", "options.quant", str, "a quantization name such as fp32", required=False)
    source = check.field(manifest, "source", "source", dict, "an object with the source model's sha256")
    check.field(source, "sha256", "source.sha256", str, "the source model's sha256")
    check.field(manifest, "cache_key", "cache_key", str, "text", required=False)
    toolchain = check.field(manifest, "toolchain", "toolchain", dict, "an object of package versions", required=False) or {}
    for package in toolchain:
        check.field(toolchain, package, f"toolchain.{package}", str, "a version", required=False)
    check.tensors(manifest, "inputs")
    check.tensors(manifest, "outputs")
    check.mapping(manifest)
    check.state(manifest)
    labels = check.field(manifest, "labels", "labels", list, "a list of class names", required=False)
    if labels is not None and not all(isinstance(label, str) for label in labels):
        raise check.fail("labels", "holds a value that is not text; it must be a list of class names")
    task = check.field(manifest, "task", "task", (dict, str), 'a task name or an object such as {"name": "classify"}', required=False)
    if isinstance(task, dict) and task.get("anchors") is not None:  # null: generated from the task's anchor options
        check.listed(listed, task["anchors"], "task.anchors")
    check.field(manifest, "preprocess", "preprocess", dict, "an object", required=False)
    reference = check.field(manifest, "reference", "reference", dict, "an object naming the reference .npz files", required=False) or {}
    for which in ("inputs", "outputs", "expected"):
        if which in reference:
            check.listed(listed, reference[which], f"reference.{which}")
    # the gates `check` judges by (bench and demo run without them: check says when they are missing)
    accuracy = check.field(manifest, "accuracy", "accuracy", dict, "an object with the tolerances", required=False) or {}
    tolerances = check.field(accuracy, "tolerances", "accuracy.tolerances", dict, 'an object such as {"min_cosine": 0.99}', required=False) or {}
    for gate, limit in tolerances.items():
        if not _number(limit):
            raise check.fail(f"accuracy.tolerances.{gate}", f"is {_shown(limit)}, not a finite number")
    return manifest
