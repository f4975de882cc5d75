"""The runtime's benchmark harness against a bare LiteRT interpreter loop, same model, same run.

    .venv/bin/python benchmarks/runtime_overhead.py [ARTIFACT_DIR]

Default artifact: MobileNetV2 fp32 for tflite (converted if needed). Both loops use one
thread and the same prepared input; they alternate in rounds, in ABBA order (whichever
runs first in a round pays for a cold cache), so machine noise hits both alike.
Goal: harness overhead at most 2%. Then multi-instance throughput: 1 and 2 runners of one
thread each, on this machine's cores, and the scaling efficiency.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from edgeship.paths import REPO_ROOT as ROOT
from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends.litert import LiteRTBackend
from edgeship_runtime.bench import latency_stats, multi_instance, timed_loop

ROUNDS, RUNS = 8, 150


def default_artifact() -> Path:
    from edgeship.convert import Request, convert
    from edgeship.examples import build_examples

    folder = build_examples(ROOT / "examples", names=("mobilenetv2",))[0]
    return convert(Request(target="tflite", model=folder / "model.onnx", quant="fp32", eval=folder / "eval.npz", out=ROOT / "artifacts"))


def bare_loop(interpreter, input_index, output_index, value, runs: int) -> list[float]:
    times, clock = [], time.perf_counter
    for _ in range(runs):
        began = clock()
        interpreter.set_tensor(input_index, value)
        interpreter.invoke()
        interpreter.get_tensor(output_index)
        times.append(clock() - began)
    return times


def main() -> None:
    artifact = Artifact.open(sys.argv[1] if len(sys.argv) > 1 else default_artifact())
    from ai_edge_litert.interpreter import Interpreter

    with LiteRTBackend(artifact, threads=1) as backend:
        feeds = backend.prepare(artifact.sample_input())
        (input_name, value), = feeds.items()
        bare = Interpreter(model_path=str(artifact.model_file), num_threads=1)
        bare.allocate_tensors()
        input_index = bare.get_input_details()[0]["index"]
        output_index = bare.get_output_details()[0]["index"]
        bare_loop(bare, input_index, output_index, value, 30)
        timed_loop(backend, feeds, 30, 0)
        harness_times, bare_times = [], []
        for round_index in range(ROUNDS):
            for which in (("harness", "bare") if round_index % 2 == 0 else ("bare", "harness")):
                if which == "harness":
                    harness_times += timed_loop(backend, feeds, RUNS, 0)
                else:
                    bare_times += bare_loop(bare, input_index, output_index, value, RUNS)
    harness, plain = latency_stats(harness_times), latency_stats(bare_times)
    overhead = harness["mean_ms"] / plain["mean_ms"] - 1
    print(f"runtime overhead benchmark: {artifact.path.name} ({artifact.backend}, 1 thread, {ROUNDS} alternating rounds of {RUNS})")
    print(f"  bare interpreter loop:  mean {plain['mean_ms']:.3f} ms  p50 {plain['p50_ms']:.3f} ms  p90 {plain['p90_ms']:.3f} ms")
    print(f"  edgeship bench harness: mean {harness['mean_ms']:.3f} ms  p50 {harness['p50_ms']:.3f} ms  p90 {harness['p90_ms']:.3f} ms")
    print(f"  harness overhead (mean): {overhead * 100:+.2f}%  (goal <= 2%: {'met' if overhead <= 0.02 else 'MISSED'}); "
          f"p50: {(harness['p50_ms'] / plain['p50_ms'] - 1) * 100:+.2f}%")
    single = multi_instance(artifact, LiteRTBackend, 1, 1, {}, 100, 3.0)
    double = multi_instance(artifact, LiteRTBackend, 2, 1, {}, 100, 3.0)
    efficiency = double["throughput_fps"] / (2 * single["throughput_fps"])
    print(f"  multi-instance on {os.cpu_count()} cores: 1 runner {single['throughput_fps']:.1f} FPS, 2 runners {double['throughput_fps']:.1f} FPS, "
          f"scaling efficiency {efficiency:.2f}")


if __name__ == "__main__":
    main()
