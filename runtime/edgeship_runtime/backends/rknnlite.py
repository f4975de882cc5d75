"""RKNN Lite backend for Rockchip NPUs (RK3588 and family), through rknn-toolkit-lite2.

`core` picks the NPU cores: "auto" (the driver chooses), "single" (core 0), "all" (the
three RK3588 cores working on one inference), or "0"/"1"/"2". `RKNNPool` holds one
runtime per core for throughput.
"""

from __future__ import annotations

import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable

CORE_MASKS = {"auto": "NPU_CORE_AUTO", "single": "NPU_CORE_0", "all": "NPU_CORE_0_1_2",
              "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2"}


def npu_present(sysroot: str = "/") -> bool:
    patterns = ("dev/rknpu*", "sys/kernel/debug/rknpu", "sys/module/rknpu", "proc/device-tree/npu@*")
    return any(glob.glob(os.path.join(sysroot, pattern)) for pattern in patterns)


def _rknnlite_class():
    try:
        from rknnlite.api import RKNNLite
    except ImportError:
        raise RuntimeUnavailable("the RKNN Lite backend needs rknn-toolkit-lite2 (aarch64 wheel: pip install "
                                 "'edgeship-runtime[rknn]') and Rockchip's librknnrt.so in /usr/lib") from None
    return RKNNLite


class RKNNLiteBackend(Backend):
    name = "rknnlite"
    accelerator = "rknpu"

    def _load(self) -> None:
        core = str(self.options.get("core", "auto"))
        if core not in CORE_MASKS:
            raise ValueError(f"rknnlite: core {core!r} is not one of {sorted(CORE_MASKS)}")
        if not npu_present():
            raise RuntimeUnavailable("no Rockchip NPU on this board (/dev/rknpu*, /sys/kernel/debug/rknpu and the rknpu module are absent); "
                                     "run on an RK3588-class board with the rknpu driver, or use --allow-cpu-fallback with a CPU artifact")
        rknnlite = _rknnlite_class()
        self.runtime = rknnlite(verbose=False)
        code = self.runtime.load_rknn(str(self.artifact.model_file))
        if code != 0:
            raise RuntimeUnavailable(f"rknnlite: load_rknn({self.artifact.model_file}) returned {code}; the file is not an .rknn model or is corrupt")
        code = self.runtime.init_runtime(core_mask=getattr(rknnlite, CORE_MASKS[core]))
        if code != 0:
            raise RuntimeUnavailable(f"rknnlite: init_runtime(core={core}) returned {code}; check librknnrt.so matches the toolkit version "
                                     f"in the manifest ({self.artifact.manifest.get('toolchain', {}).get('rknn-toolkit2', '?')}) and the NPU driver is loaded")
        self._bind_io()

    def _bind_io(self) -> None:
        self._order = [m["name"] for m in self._inputs.values()]
        self._output_names = [m["name"] for m in self._outputs.values()]

    def _io_details(self) -> dict[str, tuple]:
        # RKNN Lite takes float inputs and returns float outputs; it (de)quantizes itself.
        names = [m["name"] for m in self._inputs.values()] + [m["name"] for m in self._outputs.values()]
        return {name: (np.dtype(np.float32), 0.0, 0) for name in names}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._inference([feeds[name] for name in self._order])
        if outputs is None:
            raise RuntimeError("rknnlite: inference returned no outputs (see the RKNN log above)")
        return dict(zip(self._output_names, outputs))

    def _inference(self, inputs: list) -> list | None:
        return self.runtime.inference(inputs=inputs)

    def _close(self) -> None:
        self.runtime.release()


class RKNNPool:
    """One RKNN Lite runtime per NPU core; `map` spreads inputs over them for throughput."""

    def __init__(self, artifact, cores=("0", "1", "2")):
        self.backends = [RKNNLiteBackend(artifact, core=core) for core in cores]
        self._free = list(range(len(self.backends)))
        self._lock = threading.Lock()

    def __enter__(self):
        for backend in self.backends:
            backend.load()
        self._executor = ThreadPoolExecutor(len(self.backends))
        return self

    def __exit__(self, *exc):
        self._executor.shutdown()
        for backend in self.backends:
            backend.close()

    def _run(self, inputs):
        with self._lock:
            slot = self._free.pop()
        try:
            return self.backends[slot].infer(inputs)
        finally:
            with self._lock:
                self._free.append(slot)

    def map(self, batch_of_inputs):
        return list(self._executor.map(self._run, batch_of_inputs))
