"""`edgeship-runtime check`: run the artifact on its reference inputs and judge it against the fp32
reference outputs the way the conversion did: by what the model is for (its manifest's task) and
the manifest's tolerances; exit code 0 means pass."""

from __future__ import annotations

from edgeship_runtime.tasks import compare, default_tolerances, validate


def default_task(manifest: dict) -> dict:
    """The task of a manifest made before tasks existed: classify when it names classes, as its
    tolerances were a classifier's, else generic."""
    return manifest.get("task") or {"name": "classify" if manifest.get("labels") else "generic"}


def task_of(manifest: dict) -> dict:
    """The artifact's task record (see default_task)."""
    return validate(default_task(manifest), manifest["outputs"], manifest.get("labels"), "manifest.json task")


def tolerances_of(manifest: dict, task: dict) -> dict:
    """The manifest's gates; a manifest made before tasks existed lacks some of its task's (a
    classifier's had no SNR gate), which come from the task's defaults for its mode."""
    recorded = manifest["accuracy"]["tolerances"]
    if manifest.get("task"):
        return recorded
    return {**default_tolerances(task["name"], manifest.get("options", {}).get("quant", "fp32")), **recorded}


def check(artifact, backend_cls, threads=None, fallback=None, max_samples: int | None = None, **options) -> dict:
    """`max_samples`: judge on the first N reference samples only (an emulated board, where one
    inference takes seconds); the report says how many of how many."""
    integrity = artifact.verify_files()
    inputs = artifact.reference("inputs")
    reference = artifact.reference("outputs")
    expected = artifact.reference("expected")
    names = [spec["name"] for spec in artifact.inputs]
    outputs = []
    available = len(inputs[names[0]])
    count = available if not max_samples else min(max_samples, available)
    with backend_cls(artifact, threads=threads, **options) as backend:
        for sample in artifact.samples(inputs, names)[:count]:
            outputs.append(backend.infer(sample))
    output_names = [spec["name"] for spec in artifact.outputs]
    fp32 = [{name: reference[name][i:i + 1] for name in output_names} for i in range(count)]
    x86 = [{name: expected[name][i:i + 1] for name in output_names} for i in range(count)]
    task = task_of(artifact.manifest)
    tolerances = tolerances_of(artifact.manifest, task)
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
