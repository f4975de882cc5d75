"""ONNX Runtime backend (CPU by default; CUDA/TensorRT execution providers when asked for)."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable

_ONNX_TO_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int8)": np.int8,
                  "tensor(uint8)": np.uint8, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    accelerator = "cpu"
    extra = "onnxruntime"
    packages = ("onnxruntime", "onnxruntime-gpu")

    def _load(self) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeUnavailable("the ONNX Runtime backend needs the `onnxruntime` package "
                                     "(pip install 'edgeship-runtime[onnxruntime]')") from None
        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        if isinstance(providers, str):  # --backend-option providers=CUDAExecutionProvider,CPUExecutionProvider
            providers = [name for name in providers.split(",") if name]
        # model_path(): the model and every external-data file it names, verified before ONNX Runtime opens them
        self.session = onnxruntime.InferenceSession(str(self.artifact.model_path()), options, providers=providers)
        self._output_names = [m["name"] for m in self._outputs.values()]
        self._dynamic_batch = all(not isinstance(i.shape[0], int) for i in self.session.get_inputs())

    def _io_details(self) -> dict[str, tuple]:
        return {t.name: (np.dtype(_ONNX_TO_NUMPY.get(t.type, np.float32)), 0.0, 0)
                for t in self.session.get_inputs() + self.session.get_outputs()}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feeds)))

    def _set_batch(self, batch: int) -> None:
        if not self._dynamic_batch:
            raise NotImplementedError(f"{self.artifact.model_file.name} has a fixed batch axis")

    def _close(self) -> None:
        del self.session


BACKENDS = (OnnxRuntimeBackend,)
