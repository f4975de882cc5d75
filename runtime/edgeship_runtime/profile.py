"""`edgeship-runtime profile` (and `bench --profile`): which operators an artifact's time goes to.

Each backend asks its own runtime for per-operator times where the runtime offers them (ONNX
Runtime's profiling trace, OpenVINO's performance counters, MNN's op callbacks, TensorRT's
IProfiler); this module
runs it and turns the runtime's raw times into one document every backend shares:

    {"available": true, "backend": ..., "profiler": ..., "runs": N, "total_ms": ...,
     "top": [{"op", "type", "ms", "share"}...], "by_type": [{"type", "ms", "share", "nodes"}...]}

`ms` is the mean time per run; `share` is that operator's part of the summed operator time
(not of the wall time: a runtime's own overhead between operators is in neither). A backend
without per-operator timing gives {"available": false, "reason": ...}, so a bench run with
--profile still completes.
"""

from __future__ import annotations

import math

MAX_RUNS = 1000  # an ONNX Runtime trace grows with every run: a bound on what is read back
DEFAULT_TOP = 10
MAX_TOP = 100


class ProfileUnavailable(Exception):
    """This backend's runtime offers no per-operator timing (the message says which runtime and why)."""


def summarize(times: dict[str, tuple[str, float]], runs: int, top: int = DEFAULT_TOP) -> dict:
    """{node name: (op type, total ms over all runs)} -> the shared document's figures: the `top`
    nodes by time, and every op type's time, each as mean ms per run and share of the total."""
    if runs < 1:
        raise ValueError(f"runs is {runs}: profile at least one run")
    nodes = {name: (str(kind), float(total)) for name, (kind, total) in times.items() if math.isfinite(total) and total >= 0}
    total = sum(ms for _, ms in nodes.values())

    def share(ms: float) -> float:
        return ms / total if total > 0 else 0.0

    ranked = sorted(nodes.items(), key=lambda item: (-item[1][1], item[0]))
    by_type: dict[str, list[float]] = {}
    for kind, ms in nodes.values():
        by_type.setdefault(kind, []).append(ms)
    types = sorted(by_type.items(), key=lambda item: (-sum(item[1]), item[0]))
    return {
        "runs": runs, "nodes": len(nodes), "total_ms": total / runs,
        "top": [{"op": name, "type": kind, "ms": ms / runs, "share": share(ms)} for name, (kind, ms) in ranked[:top]],
        "by_type": [{"type": kind, "ms": sum(values) / runs, "share": share(sum(values)), "nodes": len(values)}
                    for kind, values in types[:top]],
    }


def profile(artifact, backend_cls, runs: int = 20, top: int = DEFAULT_TOP, threads: int | None = None, fallback: dict | None = None,
            **options) -> dict:
    """Load the artifact on its backend, run its reference sample `runs` times under the runtime's
    profiler (after one unprofiled warm-up where the runtime allows), and summarise."""
    if not 1 <= runs <= MAX_RUNS:
        raise ValueError(f"runs is {runs}: give 1 to {MAX_RUNS}")
    document = {"artifact": artifact.identity(), "backend": backend_cls.name, "profiler": backend_cls.profiler,
                "threads": threads, "fallback": fallback}
    if backend_cls.profiler is None:  # said before the model is loaded: a board without a profiler spends nothing on it
        return {**document, "available": False, "reason": f"{backend_cls.name} {backend_cls.no_profiler}"}
    with backend_cls(artifact, threads=threads, **options) as backend:
        try:
            summary = backend.profile(artifact.sample_input(), runs, top)
        except ProfileUnavailable as error:
            return {**document, "available": False, "reason": str(error)}
    return {**document, "available": True, **summary}
