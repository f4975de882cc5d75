"""`edgeship-runtime check`: run the artifact on its reference inputs and judge it against the fp32
reference outputs the way the conversion did: by what the model is for (its manifest's task) and
the manifest's tolerances; exit code 0 means pass."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from edgeship_runtime import sequence
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import atomic_write_text, sha256_file, tree_sha256
from edgeship_runtime.tasks import compare, default_tolerances, implied, validate

RECORD_VERSION = 1


def default_task(manifest: dict) -> dict:
    """The task of a manifest made before tasks existed: classify when it names classes, as its
    tolerances were a classifier's, else generic."""
    task = manifest.get("task") or {"name": implied(bool(manifest.get("labels")))}
    return {"name": task} if isinstance(task, str) else task


def task_of(manifest: dict) -> dict:
    """The artifact's task record (see default_task)."""
    return validate(default_task(manifest), manifest["outputs"], manifest.get("labels"), "manifest.json task")


def tolerances_of(manifest: dict, task: dict) -> dict:
    """The manifest's gates; a manifest made before tasks existed lacks some of its task's (a
    classifier's had no SNR gate), which come from the task's defaults for its mode."""
    recorded = (manifest.get("accuracy") or {}).get("tolerances")
    if recorded is None:
        raise ArtifactError("manifest.json has no accuracy.tolerances to judge the artifact by; convert the model again")
    if manifest.get("task"):
        return recorded
    return {**default_tolerances(task["name"], manifest.get("options", {}).get("quant", "fp32")), **recorded}


def check(artifact, backend_cls, threads=None, fallback=None, max_samples: int | None = None, **options) -> dict:
    """`max_samples`: judge on the first N reference samples only (an emulated board, where one
    inference takes seconds); the report says how many of how many."""
    integrity = artifact.verify_files()
    if integrity:
        return integrity_failed(artifact, backend_cls, fallback, integrity)
    names = [spec["name"] for spec in artifact.inputs]
    output_names = [spec["name"] for spec in artifact.outputs]
    inputs = artifact.reference("inputs", names)
    reference = artifact.reference("outputs", output_names)
    expected = artifact.reference("expected", output_names)
    available = sequence.count(inputs[names[0]], artifact.inputs[0])
    stacked = min(sequence.count(reference[output_names[0]], artifact.outputs[0]), sequence.count(expected[output_names[0]], artifact.outputs[0]))
    if stacked < available:  # counted on the output's own batch axis (a state output stacks on axis 1)
        raise ArtifactError(f"{artifact.path}: the reference outputs hold fewer samples than its {available} reference inputs; "
                            "convert the model again")
    count = available if not max_samples else min(max_samples, available)
    state, lengths = carried_state(artifact.manifest, available)
    if lengths:  # whole sequences only: each is carried from its start
        lengths = sequence.whole_sequences(lengths, count)
        count = sum(lengths)
    task = task_of(artifact.manifest)
    tolerances = tolerances_of(artifact.manifest, task)
    with backend_cls(artifact, threads=threads, **options) as backend:
        # a stateful model's sequences are run as it runs in use: each step fed the state this board's step before returned
        outputs = sequence.run_sequences(lambda batch: [backend.infer(sample) for sample in batch], artifact.samples(inputs, names)[:count],
                                         lengths, state)
    fp32 = sequence.split(reference, artifact.outputs)[:count]
    x86 = sequence.split(expected, artifact.outputs)[:count]
    verdict = compare(task, fp32, outputs, tolerances, artifact_dir=artifact.path)
    # what this board computes against what the conversion host computed for the same artifact
    against_x86 = compare(task, x86, outputs, tolerances, artifact_dir=artifact.path)
    for name, figures in verdict["outputs"].items():
        figures["passed"] = not any(f"output {name!r}" in reason for reason in verdict["failed"])
        figures["vs_x86_converted"] = against_x86["outputs"][name]
    return {
        "passed": not integrity and verdict["passed"],
        "integrity": {"passed": not integrity, "mismatched_files": integrity},
        "task": task["name"],
        "outputs": verdict["outputs"],
        "metrics": verdict["metrics"],
        "metrics_vs_x86_converted": against_x86["metrics"],
        "failed": verdict["failed"],
        "tolerances": tolerances,
        "samples": len(outputs),
        "samples_available": available,  # fewer judged than available: --max-samples (a bounded check)
        "backend": backend_cls.name,
        "fallback": fallback,
        "artifact": artifact.identity(),
    }


def carried_state(manifest: dict, available: int) -> tuple[list[dict], list[int] | None]:
    """The manifest's state pairs and the reference's sequences (None: samples run one by one)."""
    state = manifest.get("state") or []
    lengths = (manifest.get("reference") or {}).get("sequences")
    if not state or lengths is None:
        return state, None
    if sum(lengths) != available:
        raise ArtifactError(f"manifest.json reference.sequences sums to {sum(lengths)} steps, but the reference inputs hold {available}; "
                            "convert the model again")
    return state, lengths


def integrity_failed(artifact, backend_cls, fallback, mismatched: list[str]) -> dict:
    """The report of an artifact whose files are not the ones its manifest lists: nothing of it
    is loaded or run (a changed file is not evidence of anything), and it fails."""
    return {
        "passed": False,
        "integrity": {"passed": False, "mismatched_files": mismatched},
        "task": default_task(artifact.manifest).get("name"),
        "outputs": {}, "metrics": {}, "metrics_vs_x86_converted": {},
        "failed": [f"{', '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}: missing, or sha256 differs from manifest.json; "
                   "nothing was run"],
        "tolerances": None, "samples": 0, "samples_available": None,
        "backend": backend_cls.name, "fallback": fallback, "artifact": artifact.identity(),
    }


def check_fingerprint(artifact, backend_cls, fallback, board: dict, threads=None, max_samples=None, options=None) -> str:
    """What decides a check's result besides the artifact's files (verified on every read): its
    manifest, this runtime's code, the backend and fallback chosen, the board as detected (its
    accelerators and runtime versions, which a driver update changes) and the arguments."""
    package = Path(__file__).parent
    material = {"version": RECORD_VERSION, "manifest": sha256_file(artifact.path / "manifest.json"),
                "runtime": tree_sha256(package, package.rglob("*.py")), "backend": backend_cls.name, "fallback": _fallback_key(fallback),
                "board": board, "threads": threads, "max_samples": max_samples, "options": options or {}}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _fallback_key(fallback: dict | None) -> dict | None:
    """A fallback by the artifacts it involves (their sha256), not by its reason's text: the same
    artifact is reached through the release's folder at deploy and through `current` later."""
    if not fallback:
        return None
    return {part: (fallback.get(part) or {}).get("artifact_sha256") for part in ("requested", "used")}


def read_record(path, fingerprint: str, artifact, fallback=None) -> dict | None:
    """The report kept in `path` by an earlier check of the same fingerprint, its files verified
    again now (a changed file means a new check); None when there is none to reuse."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None  # none yet, or one cut short or damaged: checked again and written anew
    if not isinstance(record, dict) or not isinstance(record.get("report"), dict) or record.get("fingerprint") != fingerprint \
            or artifact.verify_files():
        return None
    # the paths as given now (the release's `current` link, or its own folder)
    return {**record["report"], "artifact": artifact.identity(), "fallback": fallback,
            "recorded": {"file": str(path), "checked_at": record.get("checked_at")}}


def write_record(path, fingerprint: str, report: dict) -> None:
    target = Path(path)
    if not target.parent.is_dir():
        if not target.parent.parent.is_dir():
            raise ArtifactError(f"--record {path}: folder {target.parent.parent} does not exist; pass a path in an existing folder")
        target.parent.mkdir(exist_ok=True)
    checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(target, json.dumps({"fingerprint": fingerprint, "checked_at": checked_at, "report": report}, sort_keys=True) + "\n")
