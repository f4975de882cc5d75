"""TensorRT backend: the artifact's ONNX becomes an engine on this GPU, cached, then runs from device buffers.

Engines are specific to one GPU and TensorRT version, so the first load on a board builds
one (fp32, fp16, or int8 with the artifact's calibration data; see trt_engine) and later
loads read it from the engine cache. Each inference is timed with CUDA events on its
stream: host-to-device copies, GPU compute (execute_async_v3) and device-to-host copies
separately; the bench reports them beside the end-to-end wall time.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime import sysfs
from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable
from edgeship_runtime.trt_engine import _imports, check_cuda, ensure_engine

STAGES = ("h2d_ms", "compute_ms", "d2h_ms")


def layer_type(name: str) -> str:
    """An op type for a TensorRT layer from its name, which is all its IProfiler reports: the ONNX
    node's type as the parser names layers ("/backbone/conv1/Conv" -> "Conv", "Conv_12" -> "Conv"),
    a fused layer's types joined ("/c/Conv + /r/Relu" -> "Conv + Relu")."""
    kinds = []
    for part in str(name).split(" + "):
        last = part.strip().rstrip("/").split("/")[-1]
        kinds.append(last.split("_")[0].rstrip("0123456789.") or last or "layer")
    return " + ".join(kinds)


class TensorRTBackend(Backend):
    name = "tensorrt"
    accelerator = "nvidia_gpu"
    # TensorRT comes with JetPack (not from a wheelhouse); the extra brings ONNX Runtime,
    # which runs the artifact's very same ONNX where there is no GPU (the labelled CPU fallback).
    extra = "onnxruntime"
    profiler = "TensorRT IProfiler (per layer; untested here)"
    packages = ("tensorrt",)
    cpu_fallback = "onnxruntime"

    @classmethod
    def detect_accelerator(cls, sysroot: str = "/") -> dict:
        """A Jetson's integrated GPU (by its device nodes) or discrete NVIDIA GPUs (by the driver)."""
        import glob
        import os
        import re
        import shutil
        import subprocess

        release = sysfs.read(sysroot, "etc/nv_tegra_release")
        compatible = sysfs.read(sysroot, f"{sysfs.device_tree(sysroot)}/compatible") or ""
        jetson = bool(release) or "nvidia,tegra" in compatible
        # A Jetson's integrated GPU is there when its device nodes are (nvgpu on Orin, nvhost on older).
        igpu = jetson and sysfs.exists(sysroot, "dev/nvgpu/igpu0", "dev/nvhost-gpu", "dev/nvhost-ctrl-gpu")
        gpus = []
        for info in glob.glob(os.path.join(sysroot, "proc/driver/nvidia/gpus/*/information")):
            text = sysfs.read(sysroot, os.path.relpath(info, sysroot)) or ""
            found = re.search(r"Model:\s*(.+)", text)
            if found:
                gpus.append(found.group(1).strip())
        if not gpus and sysroot == "/" and shutil.which("nvidia-smi"):
            try:
                result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
                gpus = [line.strip() for line in result.stdout.splitlines() if line.strip()]
            except (OSError, subprocess.TimeoutExpired):
                pass
        return {"present": igpu or bool(gpus), "jetson": jetson, "integrated_gpu": igpu,
                "jetson_release": release.splitlines()[0] if release else None, "gpus": gpus}

    @classmethod
    def prepare_artifact(cls, artifact, board: dict, cache: str | None = None, allow_cpu_fallback: bool = False) -> dict:
        """Build (or find) this board's engine of the artifact: minutes on a Jetson, so deploy
        runs it as a background task before the accuracy check."""
        import sys
        import time

        if cls.accelerator not in board["available"]:
            reason = f"this board has no NVIDIA GPU (detect: {cls.accelerator} absent), so {artifact.path} gets no engine"
            if not allow_cpu_fallback:
                raise RuntimeUnavailable(reason + "; run on a Jetson, or pass --allow-cpu-fallback")
            return {"prepared": False, "cpu_fallback": True,
                    "skipped": reason + f"; its {artifact.model_file.name} runs on ONNX Runtime's CPU provider instead"}
        started = time.monotonic()
        _, record = ensure_engine(artifact, cache, log=lambda line: print(line, file=sys.stderr, flush=True))
        return {"prepared": not record["cached"], "engine": record, "seconds": time.monotonic() - started}

    def _load(self) -> None:
        trt, self._cudart = _imports()
        cudart = self._cudart
        if self.options.get("engine"):
            engine_path, self.engine_record = self.options["engine"], {"path": self.options["engine"], "cached": True, "given": True}
        else:
            engine_path, self.engine_record = ensure_engine(self.artifact, self.options.get("engine_cache"))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with open(engine_path, "rb") as handle:
            self.engine = self._runtime.deserialize_cuda_engine(handle.read())
        if self.engine is None:
            from edgeship_runtime.errors import RuntimeUnavailable

            raise RuntimeUnavailable(f"tensorrt: {engine_path} could not be deserialized; engines only run on the GPU and TensorRT "
                                     f"version that built them ({trt.__version__} here): delete it and load again to rebuild")
        self.context = self.engine.create_execution_context()
        self._stream = check_cuda(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._events = [check_cuda(cudart.cudaEventCreate(), "cudaEventCreate") for _ in range(4)]
        self._trt = trt
        self.stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self._allocate(1)

    def _allocate(self, batch: int) -> None:
        trt, cudart = self._trt, self._cudart
        self._free_buffers()
        self._host, self._device, self._dtypes = {}, {}, {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            shape = list(self.engine.get_tensor_shape(name))
            if shape and shape[0] == -1:
                shape[0] = batch
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, shape)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self._host[name] = np.empty([max(d, 1) for d in self.context.get_tensor_shape(name)], dtype)
            self._device[name] = check_cuda(cudart.cudaMalloc(self._host[name].nbytes), "cudaMalloc")
            self.context.set_tensor_address(name, self._device[name])
            self._dtypes[name] = dtype

    def _free_buffers(self) -> None:
        for pointer in getattr(self, "_device", {}).values():
            self._cudart.cudaFree(pointer)
        self._device = {}

    def _io_details(self) -> dict[str, tuple]:
        return {name: (dtype, 0.0, 0) for name, dtype in self._dtypes.items()}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, kind, stream, events = self._cudart, self._cudart.cudaMemcpyKind, self._stream, self._events
        check_cuda(cudart.cudaEventRecord(events[0], stream), "cudaEventRecord")
        for name, value in feeds.items():
            value = np.ascontiguousarray(value, self._dtypes[name])
            check_cuda(cudart.cudaMemcpyAsync(self._device[name], value.ctypes.data, value.nbytes, kind.cudaMemcpyHostToDevice, stream), "copy in")
        check_cuda(cudart.cudaEventRecord(events[1], stream), "cudaEventRecord")
        if not self.context.execute_async_v3(stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed (see the TensorRT log above)")
        check_cuda(cudart.cudaEventRecord(events[2], stream), "cudaEventRecord")
        outputs = {}
        for name in (m["name"] for m in self._outputs.values()):
            host = self._host[name]
            check_cuda(cudart.cudaMemcpyAsync(host.ctypes.data, self._device[name], host.nbytes, kind.cudaMemcpyDeviceToHost, stream), "copy out")
            outputs[name] = host
        check_cuda(cudart.cudaEventRecord(events[3], stream), "cudaEventRecord")
        check_cuda(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        for stage, (start, end) in zip(STAGES, ((0, 1), (1, 2), (2, 3))):
            self.stages[stage].append(float(check_cuda(cudart.cudaEventElapsedTime(events[start], events[end]), "cudaEventElapsedTime")))
        return {name: value.copy() for name, value in outputs.items()}

    def _bind(self, feeds: dict[str, np.ndarray]) -> list[int]:
        """Copy feeds into the device buffers (synchronously) and give every I/O tensor's device
        address in the engine's order: the bindings execute_v2 takes, which profilers run (the
        timed loop uses execute_async_v3 and tensor addresses instead)."""
        cudart, kind = self._cudart, self._cudart.cudaMemcpyKind
        for name, value in feeds.items():
            value = np.ascontiguousarray(value, self._dtypes[name])
            check_cuda(cudart.cudaMemcpy(self._device[name], value.ctypes.data, value.nbytes, kind.cudaMemcpyHostToDevice), "copy in")
        return [int(self._device[self.engine.get_tensor_name(i)]) for i in range(self.engine.num_io_tensors)]

    def profile_layers(self, feeds: dict[str, np.ndarray], runs: int = 20) -> dict:
        """TensorRT's own timing of this engine: its IProfiler's per-layer times, summed per run
        (synchronous execute_v2, as trtexec --dumpProfile does)."""
        trt = self._trt
        totals = []

        class Profiler(trt.IProfiler):  # type: ignore[name-defined]  # TensorRT's bindings, imported at load
            def __init__(self):
                super().__init__()
                self.current = 0.0

            def report_layer_time(self, layer_name, ms):
                self.current += ms

        profiler = Profiler()
        self.context.profiler = profiler
        bindings = self._bind(feeds)
        for _ in range(runs):
            profiler.current = 0.0
            self.context.execute_v2(bindings)
            totals.append(profiler.current)
        try:
            self.context.profiler = None  # back to unprofiled enqueues for the timed loop
        except TypeError:
            pass
        return {"runs": runs, "mean_ms": float(np.mean(totals)), "p50_ms": float(np.median(totals))}

    def _profile(self, feeds: dict[str, np.ndarray], runs: int) -> dict[str, tuple[str, float]]:
        """TensorRT's IProfiler, per layer (untested here: no NVIDIA GPU on the machine that wrote
        this). A layer's type is not in the profiler's report: `layer_type` reads it from the name."""
        trt = self._trt
        times: dict[str, tuple[str, float]] = {}

        class Profiler(trt.IProfiler):  # type: ignore[name-defined]  # TensorRT's bindings, imported at load
            def __init__(self):
                super().__init__()

            def report_layer_time(self, layer_name, ms):
                kind, total = times.get(layer_name, (layer_type(layer_name), 0.0))
                times[layer_name] = (kind, total + ms)

        self._infer(feeds)  # warm-up, unprofiled
        self.context.profiler = Profiler()
        try:
            bindings = self._bind(feeds)
            for _ in range(runs):
                if not self.context.execute_v2(bindings):
                    raise RuntimeError("tensorrt: execute_v2 failed while profiling (see the TensorRT log above)")
        finally:
            try:
                self.context.profiler = None
            except TypeError:
                pass
        return times

    def _set_batch(self, batch: int) -> None:
        first = self.engine.get_tensor_name(0)
        if self.engine.get_tensor_shape(first)[0] != -1:
            raise NotImplementedError(f"tensorrt: the engine of {self.artifact.model_file.name} has a static batch of "
                                      f"{self.engine.get_tensor_shape(first)[0]} (the jetson target fixes input shapes)")
        self._allocate(batch)

    def _close(self) -> None:
        self._free_buffers()
        for event in self._events:
            self._cudart.cudaEventDestroy(event)
        self._cudart.cudaStreamDestroy(self._stream)
        del self.context, self.engine


BACKENDS = (TensorRTBackend,)
