"""Run folders shaped exactly as a run leaves them (report.json rows as main_job._row writes them,
bench.yml's <host>.json around `edgeship-runtime check`/`bench` output, the demo's stats.json,
artifact manifests behind deploy-artifacts/ links), with the figures a test chooses.

Latency figures come from the board runtime's own `latency_stats` over seeded samples, so the
bench documents have the real statistics' shape and spread."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgeship_runtime.bench import latency_stats

CONTROLLER = {"host": "ci-controller", "arch": "x86_64", "kernel": "6.1.0-test", "cpus": 2}
SIM_DETECT = {  # an arm64 container under qemu on the controller: the controller's kernel, another arch
    "board": {"model": "Radxa ROCK 5B (edgeship simulated)", "source": "device-tree", "compatible": ["radxa,rock-5b", "rockchip,rk3588"]},
    "arch": "aarch64", "kernel": CONTROLLER["kernel"], "python": "3.11.2", "cpu": {"cores": 2, "governors": None, "max_mhz": None},
    "accelerators": {"rknpu": {"present": False}}, "available": ["cpu"], "runtimes": {"ai-edge-litert": "1.4.0", "numpy": "2.2.0"},
}
RPI_DETECT = {
    "board": {"model": "Raspberry Pi 5 Model B Rev 1.0 (edgeship simulated)", "source": "device-tree",
              "compatible": ["raspberrypi,5-model-b", "brcm,bcm2712"]},
    "arch": "x86_64", "kernel": CONTROLLER["kernel"], "python": "3.11.2", "cpu": {"cores": 2, "governors": None, "max_mhz": None},
    "accelerators": {}, "available": ["cpu"], "runtimes": {"ai-edge-litert": "1.4.0"},
}
ROCK5B_DETECT = {  # real hardware: its own kernel, the NPU present
    "board": {"model": "Radxa ROCK 5B", "source": "device-tree", "compatible": ["radxa,rock-5b", "rockchip,rk3588"]},
    "arch": "aarch64", "kernel": "6.1.43-rockchip-rk3588", "python": "3.11.2",
    "cpu": {"cores": 8, "governors": {"performance": 8}, "max_mhz": 2400.0},
    "accelerators": {"rknpu": {"present": True}}, "available": ["cpu", "rknpu"], "runtimes": {"rknn-toolkit-lite2": "2.5.0"},
}

# (model, target, quant, backend, size, accuracy vs fp32, labelled fp32, labelled converted, controller latency ms)
CONVERSIONS = [
    ("digits", "tflite", "fp32", "litert", 46_000, 1.0, 0.978, 0.978, 0.05),
    ("digits", "tflite", "int8", "litert", 16_000, 0.994, 0.978, 0.972, 0.04),
    ("digits", "onnx", "fp32", "onnxruntime", 46_600, 1.0, 0.978, 0.978, 0.03),
    ("mobilenetv2", "tflite", "fp32", "litert", 14_000_000, 1.0, None, None, 18.0),
    ("mobilenetv2", "rk3588", "int8", "rknnlite", 4_100_000, 0.93, None, None, None),
]


def sha(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def stats(mean_ms: float, runs: int = 40, spread: float = 0.03, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    samples = np.abs(rng.normal(mean_ms, mean_ms * spread, runs)) / 1000.0
    return latency_stats(list(samples))


def manifest(artifacts: Path, model: str, target: str, quant: str, backend: str, size: int, artifact_sha: str) -> Path:
    folder = artifacts / f"{model}-{target}-{quant}-{artifact_sha[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    shape = [1, 1, 8, 8] if model == "digits" else [1, 3, 224, 224]
    document = {
        "schema": 2, "model": model, "target": target, "runtime_backend": backend,
        "options": {"quant": quant, "input_shapes": {"input": shape}},
        "source": {"file": "model.onnx", "format": "onnx", "sha256": sha("source", model)},
        "artifact": {"file": "model.bin", "sha256": artifact_sha, "size": size},
        "task": {"name": "classify"}, "image": {"tag": f"edgeship/{target}:abc123", "id": "sha256:" + sha("image", target)},
        "toolchain": {"python": "3.11.2", target: "1.0"}, "cache_key": sha("key", model, target, quant),
        "accuracy": {"passed": True, "task": "classify", "tolerances": {}, "outputs": {}, "metrics": {}, "failed": [],
                     "labelled": {"fp32": {"accuracy": 0.978}, "converted": {"accuracy": 0.972}, "samples": 360}},
    }
    (folder / "manifest.json").write_text(json.dumps(document))
    return folder


def identity(folder: Path, target: str, quant: str, backend: str, artifact_sha: str) -> dict:
    return {"path": f"/home/edge/edgeship/current/artifacts/{folder.name}", "target": target, "backend": backend, "quant": quant,
            "artifact_sha256": artifact_sha, "source_sha256": "s", "cache_key": "k"}


def bench_document(ident: dict, backend: str, accelerator: str, steady: dict, fallback: dict | None = None, throughput: float | None = None,
                   peak_kb: int = 90_000, power: dict | None = None) -> dict:
    return {
        "schema_version": 1, "tool": {"name": "edgeship-runtime", "version": "0.1.0", "python": "3.11.2"}, "board": None,
        "artifact": ident, "backend": backend, "accelerator": "cpu" if fallback else accelerator, "fallback": fallback,
        "options": {"threads": None, "warmup_runs": 5, "warmup_s": 1.0, "min_runs": 20, "min_s": 2.0, "batches": [1], "instances": [2]},
        "load_s": 0.1, "first_inference_s": 0.01, "steady": steady,
        "memory": {"peak_kb": peak_kb, "growth_kb": 0}, "device_stages": None, "engine": None, "batch_sweep": [steady],
        "multi_instance": None if throughput is None else [
            {"instances": 1, "threads_per_instance": 1, "throughput_fps": throughput / 1.8, "mean_latency_ms": 1.0, "scaling_efficiency": 1.0},
            {"instances": 2, "threads_per_instance": 1, "throughput_fps": throughput, "mean_latency_ms": 1.1, "scaling_efficiency": 0.9}],
        "power": power or {"available": False, "reason": "no power sensor"},
    }


def check_document(ident: dict, backend: str, passed: bool = True, fallback: dict | None = None) -> dict:
    return {"passed": passed, "integrity": {"passed": True, "mismatched_files": []}, "task": "classify", "outputs": {},
            "metrics": {"top1_agreement": 1.0 if passed else 0.5}, "metrics_vs_x86_converted": {},
            "failed": [] if passed else ["output 'logits': top-1 0.5 < 0.9"],
            "tolerances": {}, "samples": 20, "backend": backend, "fallback": fallback, "artifact": ident}


def demo_stats(ident: dict, backend: str, fps: float, infer_ms: float, fallback: dict | None = None) -> dict:
    stage = {"capture": 1.0, "preprocess": 2.0, "infer": infer_ms, "postprocess": 0.5, "render": 3.0}
    stages = {name: {"count": 100, "mean_ms": ms, "p50_ms": ms, "p90_ms": ms * 1.2, "p99_ms": ms * 1.5, "max_ms": ms * 2}
              for name, ms in stage.items()}
    return {"schema": 1, "final": True, "mode": "pipelined", "started": "2026-11-30T10:00:00Z", "elapsed_s": 10.0,
            "source": {"kind": "file", "live": False, "fps": 15.0}, "artifact": ident, "backend": backend, "fallback": fallback,
            "preprocess": {}, "frames": {"captured": 150, "processed": 140, "dropped": 10, "dropped_by_queue": {}}, "fps": fps,
            "stages": stages, "end_to_end": {"count": 140, "mean_ms": 30.0, "p50_ms": 28.0, "p90_ms": 40.0},
            "bottleneck": {"stage": max(stage, key=lambda k: stage[k]), "mean_ms": max(stage.values()), "fps_bound": 1000 / max(stage.values())},
            "task": "classify", "last": None, "stopped_by": "duration", "error": None}


def make_run(results: Path, artifacts: Path, run_id: str, slower: dict | None = None, accuracy_drop: dict | None = None,
             bigger: dict | None = None, seed: int = 0, with_meta: bool = True, real_board: bool = True) -> Path:
    """A complete run folder. `slower` {(board, model): factor}, `accuracy_drop` {(model, target, quant): points},
    `bigger` {(model, target, quant): factor} plant changes; `seed` varies the latency noise."""
    slower, accuracy_drop, bigger = slower or {}, accuracy_drop or {}, bigger or {}
    folder = results / run_id
    (folder / "deploy-artifacts").mkdir(parents=True)
    rows, by_key = [], {}
    for index, (model, target, quant, backend, size, metric, fp32, converted, host_ms) in enumerate(CONVERSIONS):
        size = int(size * bigger.get((model, target, quant), 1.0))
        artifact_sha = sha("artifact", model, target, quant, size)
        directory = manifest(artifacts, model, target, quant, backend, size, artifact_sha)
        link = folder / "deploy-artifacts" / directory.name
        if not link.exists():
            link.symlink_to(directory.resolve(), target_is_directory=True)
        drop = accuracy_drop.get((model, target, quant), 0.0) / 100
        host = stats(host_ms * slower.get(("controller", model), 1.0), seed=seed + index) if host_ms else None
        rows.append({
            "model": model, "target": target, "quant": quant, "task": "classify", "artifact": str(directory),
            "size_bytes": size, "sha256": artifact_sha, "cosine_min": 0.999, "snr_db_min": 40.0,
            "metric": "top-1 agreement", "metric_vs_fp32": metric - drop,
            "label_metric": "accuracy" if fp32 is not None else None, "labelled_fp32": fp32,
            "labelled_converted": None if converted is None else converted - drop,
            "accuracy_passed": True, "seconds": 12.5 + index,
            "host_check_passed": True if host else None, "host_mean_ms": host["mean_ms"] if host else None,
            "host_p90_ms": host["p90_ms"] if host else None, "host_p10_ms": host["p10_ms"] if host else None,
            "host_p50_ms": host["p50_ms"] if host else None, "host_runs": host["runs"] if host else None,
            **({} if host else {"host_note": "needs rknpu"}),
        })
        by_key[(model, target, quant)] = (directory, artifact_sha, backend)
    # the main job's phases as Phases.as_dict writes them; a phase cut short has NaN for its end
    timings = {"images": {"start_s": 0.0, "end_s": 61.5, "seconds": 61.5}, "fleet": {"start_s": 70.2, "end_s": float("nan"), "seconds": float("nan")}}
    report = {"run_id": run_id, "conversions": rows, "fleet_exit": 0, "notes": ["a test run"], "timings": timings}
    if with_meta:
        report["meta"] = {"started": "2026-11-30T10:00:00+00:00", "git": {"commit": "0" * 40, "dirty": False}, "controller": CONTROLLER,
                          "images": {"edgeship/tflite:abc123": "sha256:1"}}
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "timings.json").write_text(json.dumps(timings, indent=2))  # as the main job leaves it beside report.json

    def board_file(host: str, detect: dict, target: str, entries: list[tuple]) -> None:
        results_list = []
        for number, (model, ran, requested, accelerator, mean_ms, fallback_used) in enumerate(entries):
            directory, artifact_sha, backend = by_key[ran]
            ident = identity(directory, ran[1], ran[2], backend, artifact_sha)
            fallback = None
            if fallback_used:
                wanted = by_key.get(requested)
                fallback = {"cpu_fallback": True, "reason": f"the board has no {accelerator}",
                            "requested": identity(wanted[0], requested[1], requested[2], wanted[2], wanted[1]) if wanted else
                            {"target": requested[1], "quant": requested[2]}, "used": ident}
            steady = stats(mean_ms * slower.get((host, model), 1.0), seed=seed + 100 + number)
            measured_power = accelerator == "rknpu" and not fallback  # a Jetson-style INA3221: input rail and a sub-rail
            power = {"available": True, "mean_w": {"ina3221/VDD_IN": 5.2, "ina3221/VDD_CPU_GPU_CV": 2.1}} if measured_power else None
            results_list.append({"model": model, "note": None if not fallback_used else f"no {requested[1]} artifact on this board's accelerator",
                                 "check": check_document(ident, backend, fallback=fallback),
                                 "bench": bench_document(ident, backend, accelerator, steady, fallback, throughput=1000 / mean_ms * 1.7,
                                                         power=power)})
        document = {"host": host, "run_id": run_id, "release_id": "r1", "target": target, "detect": detect, "results": results_list}
        (folder / f"{host}.json").write_text(json.dumps(document, indent=1))

    board_file("sim-rk3588", SIM_DETECT, "rk3588", [
        ("digits", ("digits", "tflite", "fp32"), ("digits", "rk3588", "int8"), "rknpu", 30.0, True),
        ("mobilenetv2", ("mobilenetv2", "tflite", "fp32"), ("mobilenetv2", "rk3588", "int8"), "rknpu", 9000.0, True)])
    board_file("sim-rpi", RPI_DETECT, "tflite", [
        ("digits", ("digits", "tflite", "int8"), ("digits", "tflite", "int8"), "cpu", 0.06, False),
        ("mobilenetv2", ("mobilenetv2", "tflite", "fp32"), ("mobilenetv2", "tflite", "fp32"), "cpu", 25.0, False)])
    if real_board:
        board_file("rock5b", ROCK5B_DETECT, "rk3588", [
            ("mobilenetv2", ("mobilenetv2", "rk3588", "int8"), ("mobilenetv2", "rk3588", "int8"), "rknpu", 2.9, False)])
    demos = (("sim-rpi", ("mobilenetv2", "tflite", "fp32"), 14.0, 25.0), ("rock5b", ("mobilenetv2", "rk3588", "int8"), 29.5, 3.0))
    for host, key, fps, infer_ms in demos:
        if host == "rock5b" and not real_board:
            continue
        directory, artifact_sha, backend = by_key[key]
        (folder / "demo" / host).mkdir(parents=True)
        (folder / "demo" / host / "stats.json").write_text(json.dumps(demo_stats(identity(directory, key[1], key[2], backend, artifact_sha),
                                                                                 backend, fps, infer_ms), sort_keys=True))  # as the demo writes it
    return folder
