"""ONNX Runtime backend (CPU by default; CUDA/TensorRT execution providers when asked for)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable
from edgeship_runtime.files import UnsafePath, read_bounded
from edgeship_runtime.profile import ProfileUnavailable

MAX_TRACE_BYTES = 256 << 20  # about 1000 runs of a 300-node model

_ONNX_TO_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int8)": np.int8,
                  "tensor(uint8)": np.uint8, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    accelerator = "cpu"
    extra = "onnxruntime"
    packages = ("onnxruntime", "onnxruntime-gpu")
    profiler = "ONNX Runtime profiling (SessionOptions.enable_profiling)"

    def _load(self) -> None:
        self.session = self._session()
        self._output_names = [m["name"] for m in self._outputs.values()]
        self._dynamic_batch = all(not isinstance(i.shape[0], int) for i in self.session.get_inputs())

    def _session(self, profile_prefix: str | None = None):
        try:
            import onnxruntime
        except ImportError:
            raise RuntimeUnavailable("the ONNX Runtime backend needs the `onnxruntime` package "
                                     "(pip install 'edgeship-runtime[onnxruntime]')") from None
        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        providers = self.options.get("providers") or ["CPUExecutionProvider"]
        if isinstance(providers, str):  # --backend-option providers=CUDAExecutionProvider,CPUExecutionProvider
            providers = [name for name in providers.split(",") if name]
        # model_path(): the model and every external-data file it names, verified before ONNX Runtime opens them
        return onnxruntime.InferenceSession(str(self.artifact.model_path()), options, providers=providers)

    def _profile(self, feeds: dict[str, np.ndarray], runs: int) -> dict[str, tuple[str, float]]:
        """ONNX Runtime's profiling trace (a Chrome trace: one `<node>_kernel_time` event per node
        per run), from a second session that writes it into a private folder of ours; the folder is
        removed whatever happens. Each node's first event is the warm-up run's and is left out."""
        folder = Path(tempfile.mkdtemp(prefix="edgeship-ort-profile-"))  # 0700, ours: nothing else names a file in it
        try:
            session = self._session(str(folder / "trace"))
            for _ in range(runs + 1):
                session.run(self._output_names, feeds)
            written = Path(session.end_profiling())
            del session
            # the one file it wrote, in our folder, read through no link and bounded in size
            if written.parent != folder or not written.name.startswith("trace"):
                raise ProfileUnavailable(f"onnxruntime wrote its profile to {written}, not into {folder}; not read")
            events = json.loads(read_bounded(written, MAX_TRACE_BYTES, "ONNX Runtime profile trace"))
        except UnsafePath as error:
            raise ProfileUnavailable(f"{error}: profile fewer --runs") from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        durations: dict[str, tuple[str, list[float]]] = {}
        for event in events if isinstance(events, list) else ():
            name = event.get("name", "") if isinstance(event, dict) else ""
            if event.get("cat") != "Node" or not name.endswith("_kernel_time") or not isinstance(event.get("dur"), (int, float)):
                continue
            kind = str((event.get("args") or {}).get("op_name") or "?")
            durations.setdefault(name[: -len("_kernel_time")], (kind, []))[1].append(event["dur"] / 1000.0)  # microseconds
        return {node: (kind, sum(values[-runs:])) for node, (kind, values) in durations.items()}

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
