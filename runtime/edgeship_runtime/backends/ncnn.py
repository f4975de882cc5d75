"""ncnn backend: ncnn's `model.param` (the graph) with its weights in `model.bin` beside it,
through ncnn's Python wheel (x86_64 and aarch64 wheels on PyPI, manylinux_2_28 and older).

ncnn picks its own precision by CPU: on ARMv8.2 cores with fp16 arithmetic (the Pi 5's A76,
RK3588's A76/A55) it stores and computes in fp16 by default, and bf16 storage exists too. That
is not what the controller measured, so the backend pins it from the artifact's mode: an fp32
artifact runs with fp16/bf16 storage, packing and arithmetic off; an fp16 artifact (fp16
weights) runs with fp16 storage and packing on, arithmetic fp32. `--backend-option
precision=fp16-arithmetic` turns fp16 arithmetic on where the CPU has it (faster on a Pi 5, no
longer the manifest's figures). Vulkan is off unless `--backend-option vulkan=1`; what ran is
recorded in `engine_record` (threads, precision, Vulkan, ncnn's version), which bench reports.

pnnx drops the batch axis of the tensors it converts (ncnn's Mat is at most (c, d, h, w)): an
input of the source's shape [1, ...] is fed without its leading 1, and each output is reshaped
back to the source's shape. ncnn runs one sample per extractor: batch > 1 is not offered.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

PRECISIONS = ("fp32", "fp16-storage", "fp16-arithmetic")


def _flag(value, name: str) -> bool:
    text = str(value).lower()
    if text not in ("0", "1", "true", "false"):
        raise ArtifactError(f"ncnn: --backend-option {name}={value} is not 0 or 1")
    return text in ("1", "true")


class NcnnBackend(Backend):
    name = "ncnn"
    accelerator = "cpu"
    extra = "ncnn"
    no_profiler = "offers no per-layer timing through its Python API (ncnn times layers only when built with NCNN_BENCHMARK)"
    packages = ("ncnn",)

    def _settings(self) -> tuple[str, bool]:
        quant = (self.artifact.manifest.get("options") or {}).get("quant")
        precision = str(self.options.get("precision", "fp16-storage" if quant == "fp16" else "fp32"))
        if precision not in PRECISIONS:
            # ArtifactError, as for a malformed --backend-option: the CLI prints it as one line.
            raise ArtifactError(f"{self.name}: --backend-option precision={precision} is not one of {', '.join(PRECISIONS)}")
        return precision, _flag(self.options.get("vulkan", "0"), "vulkan")

    def _load(self) -> None:
        precision, vulkan = self._settings()
        try:
            import ncnn
        except ImportError:
            raise RuntimeUnavailable("the ncnn backend needs the `ncnn` package (pip install 'edgeship-runtime[ncnn]')") from None
        if vulkan:
            # Asked without a loader, ncnn prints a dlopen line per attempt before it answers: look first.
            if ctypes.util.find_library("vulkan") is None:
                raise RuntimeUnavailable("ncnn: --backend-option vulkan=1 but this board has no Vulkan loader (libvulkan.so.1); "
                                         "install the GPU's Vulkan driver or run without vulkan=1")
            if ncnn.get_gpu_count() == 0:
                raise RuntimeUnavailable("ncnn: --backend-option vulkan=1 but ncnn finds no Vulkan device; run without vulkan=1")
        model = self.artifact.model_path()
        weights = self.artifact.member(model.with_suffix(".bin").relative_to(self.artifact.path).as_posix(), "weights")
        net = ncnn.Net()
        options = net.opt
        options.num_threads = int(self.threads or 1)
        options.use_vulkan_compute = vulkan
        half = precision != "fp32"
        options.use_fp16_storage = options.use_fp16_packed = half
        options.use_fp16_arithmetic = precision == "fp16-arithmetic"
        options.use_bf16_storage = False
        if net.load_param(str(model)) != 0:
            raise ArtifactError(f"ncnn could not read {model.name} (load_param failed: a layer this ncnn does not know?); "
                                "install the ncnn that converted it (runtime/constraints.txt)")
        if net.load_model(str(weights)) != 0:
            raise ArtifactError(f"ncnn could not read {weights.name} (load_model failed); copy the artifact again")
        self._net = net
        self.engine_record = {"ncnn": importlib.metadata.version("ncnn"), "threads": options.num_threads, "vulkan": vulkan,
                              "precision": precision, "fp16_storage": half, "fp16_arithmetic": options.use_fp16_arithmetic}

    def _io_details(self) -> dict[str, tuple]:
        names = [m["name"] for m in (*self._inputs.values(), *self._outputs.values())]
        return {name: (np.dtype(np.float32), 0.0, 0) for name in names}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ncnn

        extractor = self._net.create_extractor()
        # ncnn.Mat(array) wraps the array's memory without a copy and without holding the array:
        # `held` keeps every input alive until the outputs are extracted.
        held = []
        try:
            for name, value in feeds.items():
                value = np.ascontiguousarray(value, np.float32)
                if value.ndim > 1 and value.shape[0] == 1:
                    value = value[0]  # pnnx's graph has no batch axis
                held.append(value)
                if extractor.input(name, ncnn.Mat(value)) != 0:
                    raise ArtifactError(f"ncnn: the model has no input blob {name!r}; convert the model again")
            results = {}
            for mapping in self._outputs.values():
                status, mat = extractor.extract(mapping["name"])
                if status != 0:
                    raise ArtifactError(f"ncnn: extracting output {mapping['name']!r} failed (status {status})")
                results[mapping["name"]] = self._restore(mapping["name"], np.array(mat), mapping.get("shape") or [])
            return results
        finally:
            extractor.clear()

    @staticmethod
    def _restore(name: str, value: np.ndarray, shape: list) -> np.ndarray:
        """An output in the source's shape: reshaped where the manifest knows every dimension; where
        the source left some symbolic (PP-OCR's), the leading axes pnnx dropped (the batch, a channel
        of 1) are put back as 1s, the trailing ones matched from the right."""
        if all(isinstance(dim, int) for dim in shape) and value.size == int(np.prod(shape, dtype=np.int64)):
            return value.reshape(shape)
        dropped = len(shape) - value.ndim
        if dropped >= 0 and all(not isinstance(dim, int) or dim == 1 for dim in shape[:dropped]) \
                and all(not isinstance(dim, int) or dim == size for dim, size in zip(shape[dropped:], value.shape)):
            return value.reshape((1,) * dropped + value.shape)
        raise ArtifactError(f"ncnn: output {name!r} has shape {list(value.shape)}, which does not fit the manifest's {shape}; "
                            "convert the model again")

    def _close(self) -> None:
        self._net.clear()
        del self._net


BACKENDS = (NcnnBackend,)
