"""RKNN Lite backend for Rockchip NPUs (RK3588 and family), through rknn-toolkit-lite2.

`core` picks the NPU cores: "auto" (the driver chooses), "single" (core 0), "all" (the
three RK3588 cores working on one inference), or "0"/"1"/"2". `RKNNPool` holds one
runtime per core for throughput.

RKNN models carry the version of the rknn-toolkit2 that built them; a board whose
`librknnrt.so` is older refuses them at load time with the classic "Invalid RKNN model
version" (or, worse, misbehaves), and a model compiled for one Rockchip chip does not run on
another. `compatibility` catches both from the manifest and the board, with a message that
says what to install or rebuild, so a deploy refuses the release instead of activating it.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgeship_runtime import sysfs
from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

CORE_MASKS = {"auto": "NPU_CORE_AUTO", "single": "NPU_CORE_0", "all": "NPU_CORE_0_1_2",
              "0": "NPU_CORE_0", "1": "NPU_CORE_1", "2": "NPU_CORE_2"}


# Chips that share one NPU design and load each other's models (RK3588S boards such as the
# Orange Pi 5 or Rock 5A run models built for target_platform rk3588, rknn-toolkit2's only name for both).
RKNN_FAMILIES = ({"rk3566", "rk3568"}, {"rk3588", "rk3588s"})


def npu_present(sysroot: str = "/") -> bool:
    return sysfs.exists(sysroot, "dev/rknpu*", "sys/kernel/debug/rknpu", "sys/module/rknpu", "proc/device-tree/npu@*")


def _version(text: str | None) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(part) for part in found.groups() if part is not None) if found else None


def _same_chip(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in RKNN_FAMILIES)


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
    extra = "rknn"
    no_profiler = ("offers no per-layer timing through RKNN Toolkit Lite2's Python API (the perf detail is rknn-toolkit2's "
                   "eval_perf with perf_debug, and RKNN_QUERY_PERF_DETAIL in the C API)")
    packages = ("rknn-toolkit-lite2",)

    @classmethod
    def detect_accelerator(cls, sysroot: str = "/") -> dict:
        driver = sysfs.read(sysroot, "sys/kernel/debug/rknpu/version") or sysfs.read(sysroot, "sys/module/rknpu/version")
        library = sysfs.find_library(sysroot, "librknnrt.so")
        version = None
        if library:
            with open(library, "rb") as handle:
                found = re.search(rb"librknnrt version: ([0-9][0-9.]*[0-9])", handle.read())
            version = found.group(1).decode() if found else None
        return {"present": npu_present(sysroot), "driver": driver, "librknnrt": library, "librknnrt_version": version}

    @classmethod
    def compatibility(cls, manifest: dict, board: dict) -> dict | None:
        """{"status": "ok"|"no-runtime"|"newer-runtime", ...} or ArtifactError on a mismatch."""
        model_file = manifest["artifact"]["file"]
        toolkit = manifest.get("toolchain", {}).get("rknn-toolkit2")
        platform = manifest.get("options", {}).get("platform")
        npu = board["accelerators"][cls.accelerator]
        chips = [entry.split(",", 1)[1] for entry in board["board"].get("compatible", []) if entry.startswith("rockchip,rk")]
        if platform and chips and not any(_same_chip(platform, chip) for chip in chips):
            raise ArtifactError(f"{model_file} was compiled for {platform} but this board is {chips[0]} ({board['board'].get('model')}); "
                                f"convert again with --option platform={chips[0]}")
        library, runtime = npu.get("librknnrt"), npu.get("librknnrt_version")
        result = {"toolkit": toolkit, "platform": platform, "librknnrt": library, "librknnrt_version": runtime}
        if not library:
            return {**result, "status": "no-runtime"}
        built, have = _version(toolkit), _version(runtime)
        if built is None or have is None:
            raise ArtifactError(f"cannot compare versions for {model_file}: manifest toolkit {toolkit!r}, {library} version {runtime!r}; "
                                f"install a librknnrt.so that reports its version (from Rockchip's rknn-toolkit2 release)")
        if have[:2] < built[:2] or have[0] != built[0]:
            raise ArtifactError(f"{model_file} was built by rknn-toolkit2 {toolkit} but this board's {library} is version {runtime}: "
                                f"RKNN Lite would fail with \"Invalid RKNN model version\"; install librknnrt {built[0]}.{built[1]}.x "
                                f"(rknpu2 runtime/Linux/librknn_api/aarch64 in Rockchip's rknn-toolkit2 {toolkit} release) on the board, "
                                f"or convert with the rknn-toolkit2 that matches {runtime}")
        return {**result, "status": "ok" if have[:2] == built[:2] else "newer-runtime"}

    def _load(self) -> None:
        core = str(self.options.get("core", "auto"))
        if core not in CORE_MASKS:
            raise ValueError(f"rknnlite: core {core!r} is not one of {sorted(CORE_MASKS)}")
        if not npu_present():
            raise RuntimeUnavailable("no Rockchip NPU on this board (/dev/rknpu*, /sys/kernel/debug/rknpu and the rknpu module are absent); "
                                     "run on an RK3588-class board with the rknpu driver, or use --allow-cpu-fallback with a CPU artifact")
        rknnlite = _rknnlite_class()
        self.runtime = rknnlite(verbose=False)
        code = self.runtime.load_rknn(str(self.artifact.model_path()))
        if code != 0:
            raise ArtifactError(f"rknnlite: load_rknn({self.artifact.model_file}) returned {code}; the file is not an .rknn model or is "
                                "corrupt: copy the artifact again, or convert the model again")
        code = self.runtime.init_runtime(core_mask=getattr(rknnlite, CORE_MASKS[core]))
        if code != 0:
            toolkit = self.artifact.manifest.get("toolchain", {}).get("rknn-toolkit2", "?")
            raise RuntimeUnavailable(f"rknnlite: init_runtime(core={core}) returned {code}; check librknnrt.so matches the toolkit version "
                                     f"in the manifest ({toolkit}) and the NPU driver is loaded")
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


BACKENDS = (RKNNLiteBackend,)
