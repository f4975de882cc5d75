"""The runtime's benchmark harness against a bare LiteRT interpreter loop, same model, same run.

    .venv/bin/python benchmarks/runtime_overhead.py [ARTIFACT_DIR]

An ncnn artifact is measured against a bare ncnn extractor loop instead (BARE_LOOPS); run it
where ncnn is installed, e.g. in the ncnn image with runtime/ and benchmarks/ mounted and
PYTHONPATH=/src/runtime. An mnn artifact likewise, against a bare MNN Module loop, in the mnn image.
An openvino artifact against a bare InferRequest loop, where openvino is installed (the controller's
venv has it). Measured 2026-12-07 on MobileNetV2 fp16 (ncnn, MNN, OpenVINO), 2 shared cores while
other fleets and builds ran: run-to-run spread of about +-10 % swamped the goal (OpenVINO -13.5 to
+7.8 %, MNN -1.3 to +11.6 %, ncnn -8.6 to +2.7 %, mean over rounds); on such a machine repeat it idle.

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
from collections.abc import Callable
from pathlib import Path

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.bench import latency_stats, multi_instance, timed_loop

ROUNDS, RUNS = 8, 150


def default_artifact() -> Path:
    from edgeship.convert import Request, convert
    from edgeship.examples import build_examples
    from edgeship.paths import REPO_ROOT as ROOT  # the controller's, imported only here: ncnn's run needs edgeship_runtime alone

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


def litert_bare(artifact, feeds: dict) -> Callable[[int], list[float]]:
    from ai_edge_litert.interpreter import Interpreter

    (input_name, value), = feeds.items()
    bare = Interpreter(model_path=str(artifact.model_file), num_threads=1)
    bare.allocate_tensors()
    input_index = bare.get_input_details()[0]["index"]
    output_index = bare.get_output_details()[0]["index"]
    return lambda runs: bare_loop(bare, input_index, output_index, value, runs)


def ncnn_bare(artifact, feeds: dict) -> Callable[[int], list[float]]:
    """ncnn's own loop at the backend's settings (one thread, no Vulkan, the mode's fp16 storage):
    an extractor per run, the input wrapped without a copy, each output copied out."""
    import ncnn
    import numpy as np

    net = ncnn.Net()
    half = artifact.manifest["options"].get("quant") == "fp16"
    net.opt.num_threads, net.opt.use_vulkan_compute, net.opt.use_bf16_storage, net.opt.use_fp16_arithmetic = 1, False, False, False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = half
    net.load_param(str(artifact.model_file))
    net.load_model(str(artifact.model_file.with_suffix(".bin")))
    (input_name, value), = feeds.items()
    value = np.ascontiguousarray(value[0] if value.ndim > 1 and value.shape[0] == 1 else value)
    outputs = [mapping["name"] for mapping in artifact.mapping("outputs").values()]

    def loop(runs: int) -> list[float]:
        times, clock = [], time.perf_counter
        for _ in range(runs):
            began = clock()
            extractor = net.create_extractor()
            extractor.input(input_name, ncnn.Mat(value))
            for name in outputs:
                np.array(extractor.extract(name)[1])
            times.append(clock() - began)
        return times

    return loop


def mnn_bare(artifact, feeds: dict) -> Callable[[int], list[float]]:
    """MNN's own Module loop at the backend's settings (CPU, high precision, one thread): the
    input wrapped as a constant, one forward, each output read back in NCHW. It runs the Module
    the backend loaded (`main` hands it over): two Modules of the same file in one process ran
    up to 15% apart here, the faster one by load order, which swamps a harness's cost."""
    import MNN
    import numpy as np

    expr = MNN.expr
    inputs = [mapping["name"] for mapping in artifact.mapping("inputs").values()]
    module = MNN_MODULE["module"]
    values = [np.ascontiguousarray(feeds[name], np.float32) for name in inputs]

    def loop(runs: int) -> list[float]:
        times, clock = [], time.perf_counter
        for _ in range(runs):
            began = clock()
            results = module.forward([expr.const(value, list(value.shape), expr.NCHW) for value in values])
            for result in results:
                np.array(expr.convert(result, expr.NCHW).read() if result.data_format == expr.NC4HW4 else result.read())
            times.append(clock() - began)
        return times

    return loop


MNN_MODULE: dict = {}  # the mnn backend's loaded Module, for mnn_bare


def openvino_bare(artifact, feeds: dict) -> Callable[[int], list[float]]:
    """OpenVINO's own loop at the backend's settings (the CPU plugin, f32 precision hint, one thread): the
    backend's own InferRequest of the model it compiled (as for MNN, one loaded model serves both loops,
    so where its memory landed cannot tell them apart), the feeds by name, each output read back."""
    backend = LOADED["openvino"]
    request, outputs = backend._request, list(backend._compiled.outputs)

    def loop(runs: int) -> list[float]:
        times, clock = [], time.perf_counter
        for _ in range(runs):
            began = clock()
            results = request.infer(feeds)  # a copy of each output, as the backend gets them
            for port in outputs:
                results[port]
            times.append(clock() - began)
        return times

    return loop


LOADED: dict = {}  # backend name -> the loaded backend, for a bare loop that shares its compiled model


BARE_LOOPS = {"litert": litert_bare, "ncnn": ncnn_bare, "mnn": mnn_bare,
              "openvino": openvino_bare}  # backend -> the runtime's own loop, without the harness


def main() -> None:
    artifact = Artifact.open(sys.argv[1] if len(sys.argv) > 1 else default_artifact())
    if artifact.backend not in BARE_LOOPS:
        raise SystemExit(f"runtime_overhead: no bare loop for backend {artifact.backend!r}; it knows {', '.join(BARE_LOOPS)}")
    backend_cls = backend_class(artifact.backend)

    with backend_cls(artifact, threads=1) as backend:
        feeds = backend.prepare(artifact.sample_input())
        MNN_MODULE["module"] = getattr(backend, "_module", None)
        LOADED[artifact.backend] = backend
        bare = BARE_LOOPS[artifact.backend](artifact, feeds)
        bare(30)
        timed_loop(backend, feeds, 30, 0)
        harness_times, bare_times = [], []
        for round_index in range(ROUNDS):
            for which in (("harness", "bare") if round_index % 2 == 0 else ("bare", "harness")):
                if which == "harness":
                    harness_times += timed_loop(backend, feeds, RUNS, 0)
                else:
                    bare_times += bare(RUNS)
    harness, plain = latency_stats(harness_times), latency_stats(bare_times)
    overhead = harness["mean_ms"] / plain["mean_ms"] - 1
    print(f"runtime overhead benchmark: {artifact.path.name} ({artifact.backend}, 1 thread, {ROUNDS} alternating rounds of {RUNS})")
    print(f"  bare runtime loop:      mean {plain['mean_ms']:.3f} ms  p50 {plain['p50_ms']:.3f} ms  p90 {plain['p90_ms']:.3f} ms")
    print(f"  edgeship bench harness: mean {harness['mean_ms']:.3f} ms  p50 {harness['p50_ms']:.3f} ms  p90 {harness['p90_ms']:.3f} ms")
    print(f"  harness overhead (mean): {overhead * 100:+.2f}%  (goal <= 2%: {'met' if overhead <= 0.02 else 'MISSED'}); "
          f"p50: {(harness['p50_ms'] / plain['p50_ms'] - 1) * 100:+.2f}%")
    single = multi_instance(artifact, backend_cls, 1, 1, {}, 100, 3.0)
    double = multi_instance(artifact, backend_cls, 2, 1, {}, 100, 3.0)
    efficiency = double["throughput_fps"] / (2 * single["throughput_fps"])
    print(f"  multi-instance on {os.cpu_count()} cores: 1 runner {single['throughput_fps']:.1f} FPS, 2 runners {double['throughput_fps']:.1f} FPS, "
          f"scaling efficiency {efficiency:.2f}")


if __name__ == "__main__":
    main()
