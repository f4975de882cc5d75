"""TensorRT backend: the artifact's ONNX becomes an engine on this GPU, cached, then runs from device buffers.

Engines are specific to one GPU and TensorRT version, so the first load on a board builds
one (fp32, fp16, or int8 with the artifact's calibration data; see trt_engine) and later
loads read it from the engine cache. Each inference is timed with CUDA events on its
stream: host-to-device copies, GPU compute (execute_async_v3) and device-to-host copies
separately; the bench reports them beside the end-to-end wall time.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.trt_engine import _imports, check_cuda, ensure_engine

STAGES = ("h2d_ms", "compute_ms", "d2h_ms")


class TensorRTBackend(Backend):
    name = "tensorrt"
    accelerator = "nvidia_gpu"
    # The artifact's model file is a plain ONNX model: where there is no GPU, ONNX Runtime's
    # CPU provider can run the very same file (the labelled CPU fallback).
    cpu_fallback = "onnxruntime"

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
        self.stages = {stage: [] for stage in STAGES}
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

    def profile_layers(self, feeds: dict[str, np.ndarray], runs: int = 20) -> dict:
        """TensorRT's own timing of this engine: its IProfiler's per-layer times, summed per run
        (synchronous execute_v2, as trtexec --dumpProfile does)."""
        trt = self._trt
        totals = []

        class Profiler(trt.IProfiler):
            def __init__(self):
                super().__init__()
                self.current = 0.0

            def report_layer_time(self, layer_name, ms):
                self.current += ms

        profiler = Profiler()
        self.context.profiler = profiler
        cudart, kind = self._cudart, self._cudart.cudaMemcpyKind
        for name, value in feeds.items():
            value = np.ascontiguousarray(value, self._dtypes[name])
            check_cuda(cudart.cudaMemcpy(self._device[name], value.ctypes.data, value.nbytes, kind.cudaMemcpyHostToDevice), "copy in")
        bindings = [int(self._device[self.engine.get_tensor_name(i)]) for i in range(self.engine.num_io_tensors)]
        for _ in range(runs):
            profiler.current = 0.0
            self.context.execute_v2(bindings)
            totals.append(profiler.current)
        try:
            self.context.profiler = None  # back to unprofiled enqueues for the timed loop
        except TypeError:
            pass
        return {"runs": runs, "mean_ms": float(np.mean(totals)), "p50_ms": float(np.median(totals))}

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
