"""`edgeship-runtime bench`: latency, throughput, memory and power of an artifact.

Methodology (after TFLite's benchmark_model, trtexec and MLPerf SingleStream): a warm-up
of at least `warmup_runs` inferences AND `warmup_s` seconds; a measured phase of at least
`min_runs` inferences AND `min_s` seconds; every inference timed on its own. The input is
a real reference sample of the artifact, converted once to the artifact's layout and
dtype (as benchmark_model and trtexec feed ready tensors); the timed call runs the model
and converts its outputs back to float.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import platform
import threading
import time

import numpy as np

from edgeship_runtime import __version__, scenarios

SCHEMA_VERSION = 1


def rss_kb() -> dict:
    status = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = int(value.split()[0])
    return {"rss_kb": status.get("VmRSS"), "peak_kb": status.get("VmHWM")}


def latency_stats(seconds: list[float], batch: int = 1) -> dict:
    values = np.asarray(seconds) * 1000.0
    mean = float(values.mean())
    return {
        "runs": int(values.size), "mean_ms": mean, "std_ms": float(values.std()), "min_ms": float(values.min()), "max_ms": float(values.max()),
        "p10_ms": float(np.percentile(values, 10)), "p50_ms": float(np.percentile(values, 50)), "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)), "fps": 1000.0 * batch / mean if mean else None, "batch": batch,
    }


def stage_stats(milliseconds: list[float]) -> dict:
    values = np.asarray(milliseconds)
    return {"runs": int(values.size), "mean_ms": float(values.mean()), "p50_ms": float(np.percentile(values, 50)),
            "p90_ms": float(np.percentile(values, 90)), "min_ms": float(values.min())}


def timed_loop(backend, feeds, min_runs: int, min_s: float, max_s: float | None = None) -> list[float]:
    """Time `infer_prepared` until both the run count and the duration are reached, or (with
    `max_s`, a time box for boards where one run takes seconds) once max_s has passed, after one run."""
    infer, clock = backend.infer_prepared, time.perf_counter
    times: list[float] = []
    started = clock()
    while len(times) < min_runs or clock() - started < min_s:
        if max_s is not None and times and clock() - started >= max_s:
            break
        began = clock()
        infer(feeds)
        times.append(clock() - began)
    return times


def _read_int(path: str) -> int:
    with open(path) as handle:
        return int(handle.read().strip())


def _text(path: str, default: str) -> str:
    return open(path).read().strip() if os.path.exists(path) else default


class PowerSampler:
    """Mean power of every power sensor during a phase: hwmon power*_input, the Jetson
    INA3221 rails (Orin, JetPack 5/6: inN_label with inN_input in mV and currN_input in mA,
    so W = mV * mA / 1e6; Xavier/Nano, JetPack 4: in_powerN_input in mW) and others."""

    def __init__(self, sysroot: str = "/", period_s: float = 0.05):
        self.sensors = {}  # name -> function returning watts
        hwmons = sorted(set(glob.glob(os.path.join(sysroot, "sys/class/hwmon/hwmon*")) +
                            glob.glob(os.path.join(sysroot, "sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*"))),
                        key=lambda path: os.path.realpath(path))
        seen = set()
        for hwmon in hwmons:
            if os.path.realpath(hwmon) in seen:
                continue
            seen.add(os.path.realpath(hwmon))
            name = _text(os.path.join(hwmon, "name"), os.path.basename(hwmon))
            for path in sorted(glob.glob(os.path.join(hwmon, "power*_input")) + glob.glob(os.path.join(hwmon, "in_power*_input"))):
                label = _text(path.replace("_input", "_label"), os.path.basename(path))
                # hwmon power*_input is in microwatts; the JetPack 4 ina3221 driver's in_power*_input in milliwatts
                scale = 1e-6 if os.path.basename(path).startswith("power") else 1e-3
                self.sensors[f"{name}/{label}"] = lambda path=path, scale=scale: _read_int(path) * scale
            for voltage in sorted(glob.glob(os.path.join(hwmon, "in[0-9]*_input"))):
                channel = os.path.basename(voltage)[2:-len("_input")]
                current = os.path.join(hwmon, f"curr{channel}_input")
                if os.path.exists(current) and not glob.glob(os.path.join(hwmon, f"power{channel}_input")):
                    label = _text(os.path.join(hwmon, f"in{channel}_label"), f"in{channel}")
                    self.sensors[f"{name}/{label}"] = lambda v=voltage, c=current: _read_int(v) * _read_int(c) * 1e-6
        self.samples: dict[str, list[float]] = {key: [] for key in self.sensors}
        self.period_s, self._stop = period_s, threading.Event()

    def __enter__(self):
        if self.sensors:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            for key, read in self.sensors.items():
                try:
                    self.samples[key].append(read())
                except (OSError, ValueError):
                    pass
            self._stop.wait(self.period_s)

    def __exit__(self, *exc):
        self._stop.set()
        if self.sensors:
            self._thread.join()

    def result(self) -> dict:
        if not self.sensors:
            return {"available": False, "reason": "no power sensor (no hwmon power*_input, no INA3221 rails) on this board"}
        return {"available": True, "mean_w": {key: float(np.mean(values)) for key, values in self.samples.items() if values}}


def _instance(artifact_path, hashes, backend_name, threads, options, min_runs, min_s, barrier, results):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class

    try:
        # the parent's hashes: a file it verified, unchanged since (same inode, size and time), is not hashed N times again
        artifact = Artifact.open(artifact_path, hashes)
        if artifact.backend != backend_name:  # a CPU fallback of the same folder: its runtime decides what is checked
            artifact = Artifact(artifact.path, {**artifact.manifest, "runtime_backend": backend_name}, artifact.verified)
        with backend_class(backend_name)(artifact, threads=threads, **options) as backend:
            feeds = backend.prepare(artifact.sample_input())
            for _ in range(3):
                backend.infer_prepared(feeds)
            barrier.wait()
            started = time.perf_counter()
            times = timed_loop(backend, feeds, min_runs, min_s)
            results.put((len(times), time.perf_counter() - started, float(np.mean(times))))
    except BaseException as error:  # the parent waits on this queue: it hears of the failure instead of waiting it out
        barrier.abort()
        results.put(f"{type(error).__name__}: {error}")


def multi_instance(artifact, backend_cls, count: int, threads, options, min_runs: int, min_s: float) -> dict:
    """N runners in N processes on the same artifact, started together; total throughput."""
    import queue

    from edgeship_runtime.errors import ArtifactError

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=_instance, args=(str(artifact.path), artifact.verified, backend_cls.name, threads, options, min_runs,
                                                                  min_s, barrier, results))
                 for _ in range(count)]
    for process in processes:
        process.start()
    # each runner loads the model, then measures for min_s (and min_runs): 10 minutes beyond that is a hang
    bound_s = 600 + min_s
    try:
        finished = [results.get(timeout=bound_s) for _ in processes]
    except queue.Empty:
        finished = None
    failed = [item for item in finished or () if isinstance(item, str)]
    if finished is None or failed:
        for process in processes:
            process.terminate()
    for process in processes:
        process.join(timeout=30)
    if finished is None:
        raise ArtifactError(f"bench --instances {count}: the runners did not report within {bound_s:.0f} s; "
                            f"try fewer instances or a smaller --min-runs/--min-s")
    if failed:
        raise ArtifactError(f"bench --instances {count}: a runner failed ({failed[0]})")
    throughput = sum(runs / elapsed for runs, elapsed, _ in finished)
    return {"instances": count, "threads_per_instance": threads, "throughput_fps": throughput,
            "mean_latency_ms": 1000 * float(np.mean([mean for _, _, mean in finished]))}


def benchmark(artifact, backend_cls, threads=None, warmup_runs=5, warmup_s=1.0, min_runs=20, min_s=2.0,
              batches=(1,), instances=(), fallback=None, board=None, max_s: float | None = None, scenario=None,
              **options) -> dict:
    """`max_s`: a time box for the warm-up and the measurement each (at least one run each); the
    steady figures say `time_boxed` when it cut the run count below min_runs. `scenario`: an MLPerf
    scenario (edgeship_runtime.scenarios); SingleStream is the steady phase, with at least the
    queries its early stopping needs."""
    steady_runs = max(min_runs, scenarios.minimum_queries(scenario)) if scenario == "single-stream" else min_runs
    memory = {"before_load": rss_kb()}
    began = time.perf_counter()
    backend = backend_cls(artifact, threads=threads, **options).load()
    load_s = time.perf_counter() - began
    memory["after_load"] = rss_kb()
    try:
        sample = artifact.sample_input()
        began = time.perf_counter()
        backend.infer(sample)
        first_s = time.perf_counter() - began
        feeds = backend.prepare(sample)
        if warmup_runs or warmup_s:
            timed_loop(backend, feeds, warmup_runs, warmup_s, max_s)
        memory["after_warmup"] = rss_kb()
        stages = getattr(backend, "stages", None)  # per-stage device times (CUDA events), where a backend records them
        for values in (stages or {}).values():
            values.clear()
        with PowerSampler() as power:
            began = time.perf_counter()
            steady_times = timed_loop(backend, feeds, steady_runs, min_s, max_s)
            steady_elapsed = time.perf_counter() - began
            steady = latency_stats(steady_times)
        steady["time_boxed"] = steady["runs"] < steady_runs
        device_stages = {stage: stage_stats(values) for stage, values in stages.items() if values} if stages else None
        memory["after_measure"] = rss_kb()
        sweep = []
        for batch in batches:
            if batch == 1:
                sweep.append(steady)
                continue
            try:
                backend.set_batch(batch)
            except NotImplementedError as reason:
                sweep.append({"batch": batch, "skipped": str(reason)})
                continue
            batch_feeds = backend.prepare(artifact.sample_input(batch))
            timed_loop(backend, batch_feeds, warmup_runs, 0)
            sweep.append(latency_stats(timed_loop(backend, batch_feeds, min_runs, min_s), batch))
            backend.set_batch(1)
        if scenario == "single-stream":
            scenario_result = scenarios.latency_summary(scenario, steady_times, steady_elapsed, min_s)
        elif scenario:
            scenario_result = scenarios.run(scenario, lambda: backend.infer_prepared(feeds), min_runs, min_s, max_s)
        else:
            scenario_result = None
    finally:
        backend.close()
    scaling = None
    if instances:
        runs = {count: multi_instance(artifact, backend_cls, count, threads or 1, options, min_runs, min_s) for count in sorted({1, *instances})}
        single = runs[1]["throughput_fps"]
        scaling = [{**result, "scaling_efficiency": result["throughput_fps"] / (count * single)} for count, result in runs.items()]
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "edgeship-runtime", "version": __version__, "python": platform.python_version()},
        "board": board,
        "artifact": artifact.identity(),
        "backend": backend_cls.name,
        "accelerator": "cpu" if fallback else backend_cls.accelerator,
        "fallback": fallback,
        "options": {"threads": threads, "warmup_runs": warmup_runs, "warmup_s": warmup_s, "min_runs": min_runs, "min_s": min_s, "max_s": max_s,
                    "batches": list(batches), "instances": list(instances), "scenario": scenario, **options},
        "load_s": load_s,
        "first_inference_s": first_s,
        "steady": steady,
        "scenario": scenario_result,
        "memory": {**memory, "peak_kb": memory["after_measure"]["peak_kb"],
                   "growth_kb": memory["after_measure"]["rss_kb"] - memory["after_warmup"]["rss_kb"]},
        "device_stages": device_stages,
        "engine": getattr(backend, "engine_record", None),
        "batch_sweep": sweep,
        "multi_instance": scaling,
        "power": power.result(),
    }
