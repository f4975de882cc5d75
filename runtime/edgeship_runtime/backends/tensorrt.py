"""TensorRT backend: deserialize an engine and run it with CUDA buffers (cuda-python).

Engines are specific to one GPU and TensorRT version, so they are built on the board (or
the same GPU) from the artifact's ONNX; this backend only loads and runs them.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable


def _imports():
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailable("the TensorRT backend needs the `tensorrt` Python bindings (JetPack on Jetson, "
                                 "or the tensorrt wheels on an x86 GPU machine) and an NVIDIA GPU") from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise RuntimeUnavailable("the TensorRT backend needs cuda-python (pip install cuda-python) for device buffers") from None
    return trt, cudart


def _check(result, what: str):
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"tensorrt: {what} failed with CUDA error {int(error)}")
    return values[0] if len(values) == 1 else values


class TensorRTBackend(Backend):
    name = "tensorrt"
    accelerator = "nvidia_gpu"

    def _load(self) -> None:
        trt, self._cudart = _imports()
        cudart = self._cudart
        if _check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount") < 1:
            raise RuntimeUnavailable("tensorrt: no CUDA device is visible; run on a Jetson or a GPU machine")
        engine_path = self.options.get("engine") or self.artifact.model_file
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with open(engine_path, "rb") as handle:
            self.engine = self._runtime.deserialize_cuda_engine(handle.read())
        if self.engine is None:
            raise RuntimeUnavailable(f"tensorrt: {engine_path} could not be deserialized; engines only run on the GPU and TensorRT "
                                     f"version that built them ({trt.__version__} here): rebuild it on this board")
        self.context = self.engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._trt = trt
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
            self._device[name] = _check(cudart.cudaMalloc(self._host[name].nbytes), "cudaMalloc")
            self.context.set_tensor_address(name, self._device[name])
            self._dtypes[name] = dtype

    def _free_buffers(self) -> None:
        for pointer in getattr(self, "_device", {}).values():
            self._cudart.cudaFree(pointer)
        self._device = {}

    def _io_details(self) -> dict[str, tuple]:
        return {name: (dtype, 0.0, 0) for name, dtype in self._dtypes.items()}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, kind = self._cudart, self._cudart.cudaMemcpyKind
        for name, value in feeds.items():
            value = np.ascontiguousarray(value, self._dtypes[name])
            _check(cudart.cudaMemcpyAsync(self._device[name], value.ctypes.data, value.nbytes, kind.cudaMemcpyHostToDevice, self._stream), "copy in")
        if not self.context.execute_async_v3(self._stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed (see the TensorRT log above)")
        outputs = {}
        for name in (m["name"] for m in self._outputs.values()):
            host = self._host[name]
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, self._device[name], host.nbytes, kind.cudaMemcpyDeviceToHost, self._stream), "copy out")
            outputs[name] = host
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: value.copy() for name, value in outputs.items()}

    def _set_batch(self, batch: int) -> None:
        self._allocate(batch)

    def _close(self) -> None:
        self._free_buffers()
        self._cudart.cudaStreamDestroy(self._stream)
        del self.context, self.engine
