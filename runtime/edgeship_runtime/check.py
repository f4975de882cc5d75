"""`edgeship-runtime check`: run the artifact on its reference inputs, compare with the fp32
reference outputs against the manifest's tolerances; exit code 0 means pass."""

from __future__ import annotations

from edgeship_runtime.accuracy import compare_output, within_tolerance


def check(artifact, backend_cls, threads=None, fallback=None, **options) -> dict:
    integrity = artifact.verify_files()
    inputs = artifact.reference("inputs")
    reference = artifact.reference("outputs")
    expected = artifact.reference("expected")
    names = [spec["name"] for spec in artifact.inputs]
    outputs = []
    with backend_cls(artifact, threads=threads, **options) as backend:
        for sample in artifact.samples(inputs, names):
            outputs.append(backend.infer(sample))
    tolerances = artifact.manifest["accuracy"]["tolerances"]
    report = {}
    for spec in artifact.outputs:
        name = spec["name"]
        count = len(reference[name])
        figures = compare_output([reference[name][i:i + 1] for i in range(count)], [o[name] for o in outputs])
        figures["passed"] = within_tolerance(figures, tolerances)
        figures["vs_x86_converted"] = compare_output([expected[name][i:i + 1] for i in range(count)], [o[name] for o in outputs])
        report[name] = figures
    passed = not integrity and all(figures["passed"] for figures in report.values())
    return {
        "passed": passed,
        "integrity": {"passed": not integrity, "mismatched_files": integrity},
        "outputs": report,
        "tolerances": tolerances,
        "samples": len(outputs),
        "backend": backend_cls.name,
        "fallback": fallback,
        "artifact": artifact.identity(),
    }
