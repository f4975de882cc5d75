"""LiteRT (TFLite) backend, and the Coral Edge TPU backend: the same interpreter with libedgetpu's delegate.

ai-edge-litert is the interpreter package for Python 3.10+ on x86_64 and aarch64;
tflite-runtime is accepted where a board image ships that instead.

A coral artifact holds the full-int8 `model.tflite` and, when edgetpu_compiler was in the coral
image, `model_edgetpu.tflite`; its `edgetpu.json` says which. The Edge TPU backend runs the
compiled model through the delegate; on a board without an Edge TPU, `model.tflite` runs on the
LiteRT CPU backend instead, labelled as a fallback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from edgeship_runtime import sysfs
from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # unprogrammed / programmed Coral USB
EDGETPU_RECORD = "edgetpu.json"  # written by the coral target: compiled or not, for which runtime
GET_LIBEDGETPU = ("install libedgetpu1-std from Coral's apt repository (or a libedgetpu built for this LiteRT; docs/coral.md) "
                  "and plug in the Edge TPU (USB 1a6e:089a/18d1:9302 or /dev/apex_0)")


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter
    except ImportError:
        raise RuntimeUnavailable("the LiteRT backend needs the `ai-edge-litert` package (pip install 'edgeship-runtime[litert]') "
                                 "or tflite-runtime; neither is installed") from None


class LiteRTBackend(Backend):
    name = "litert"
    accelerator = "cpu"
    extra = "litert"
    no_profiler = ("offers no per-operator timing through its Python Interpreter (TFLite's op profiler is in the benchmark_model "
                   "binary, --enable_op_profiling)")
    packages: tuple[str, ...] = ("ai-edge-litert", "tflite-runtime")

    def _delegates(self, module) -> list:
        """Delegates the interpreter gets (none: LiteRT's own CPU kernels)."""
        return []

    def _model_path(self) -> Path:
        return self.artifact.model_path()

    def _load(self) -> None:
        module = _interpreter_module()
        delegates = self._delegates(module)
        self.interpreter = module.Interpreter(model_path=str(self._model_path()), num_threads=self.threads,
                                              experimental_delegates=delegates or None)
        self.interpreter.allocate_tensors()
        self._index_tensors()

    def _tensor_indices(self) -> dict[str, int]:
        """Tensor index of every input and output, by the name the manifest's mapping uses: the
        signature's names, or, for a model without signatures, the tensors' own."""
        signatures = self.interpreter.get_signature_list()
        if signatures:
            runner = self.interpreter.get_signature_runner(next(iter(signatures)))
            details = {**runner.get_input_details(), **runner.get_output_details()}
            return {name: detail["index"] for name, detail in details.items()}
        details = self.interpreter.get_input_details() + self.interpreter.get_output_details()
        return {detail["name"]: detail["index"] for detail in details}

    def _index_tensors(self) -> None:
        self._tensor = self._tensor_indices()
        self._input_index = {m["name"]: self._tensor[m["name"]] for m in self._inputs.values()}
        self._output_index = {m["name"]: self._tensor[m["name"]] for m in self._outputs.values()}

    def _io_details(self) -> dict[str, tuple]:
        by_index = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        return {name: (np.dtype(by_index[index]["dtype"]), *by_index[index]["quantization"]) for name, index in self._tensor.items()}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        interpreter = self.interpreter
        for name, value in feeds.items():
            interpreter.set_tensor(self._input_index[name], value)
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in self._output_index.items()}

    def _resize(self, batch: int) -> None:
        for index in self._input_index.values():
            shape = list(self.interpreter.get_tensor(index).shape)
            self.interpreter.resize_tensor_input(index, [batch, *shape[1:]])
        self.interpreter.allocate_tensors()

    def _set_batch(self, batch: int) -> None:
        try:
            self._resize(batch)
        except (RuntimeError, ValueError) as error:
            raise NotImplementedError(f"{self.artifact.model_file.name} cannot run at batch {batch}: {str(error).splitlines()[0]}") from None
        # A graph with a batch of 1 baked into a Reshape resizes without complaint but gives
        # outputs of the wrong batch: that is not a batch the model allows.
        if any(self.interpreter.get_tensor(index).shape[0] != batch for index in self._output_index.values()):
            self._resize(self.batch)  # every input back to the batch it had
            raise NotImplementedError(f"{self.artifact.model_file.name} keeps a batch of 1 inside its graph; it cannot run at batch {batch}")

    def _close(self) -> None:
        del self.interpreter


def signature_tensors(model_path) -> dict[str, str]:
    """Signature name -> tensor name of each input and output of a .tflite model's first signature."""
    interpreter = _interpreter_module().Interpreter(model_path=str(model_path))
    signatures = interpreter.get_signature_list()
    if not signatures:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    tensor_names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    return {name: tensor_names[detail["index"]] for name, detail in {**runner.get_input_details(), **runner.get_output_details()}.items()}


def edgetpu_record(artifact) -> dict:
    """The coral target's edgetpu.json of an artifact ({"compiled": False} when it has none), read
    as one of its listed files; the model it names is one too."""
    if not (artifact.path / EDGETPU_RECORD).exists() and EDGETPU_RECORD not in (artifact.manifest.get("files") or {}):
        return {"compiled": False, "status": "not compiled for the Edge TPU", "reason": f"no {EDGETPU_RECORD} (not a coral artifact)"}
    path = artifact.path / EDGETPU_RECORD
    try:
        record = json.loads(artifact.read_member(EDGETPU_RECORD, "Edge TPU record"))
    except (ValueError, RecursionError) as error:
        raise ArtifactError(f"{path} is not valid JSON ({str(error)[:200]}); copy the artifact again") from None
    if not isinstance(record, dict) or (record.get("compiled") and not isinstance(record.get("file"), str)):
        raise ArtifactError(f"{path} must be an object with \"compiled\" and, when compiled, the model's \"file\"; convert the model again")
    return record


def libedgetpu_version(library: str) -> dict:
    """What libedgetpu says of itself through its C API's edgetpu_version(), e.g.
    "BuildLabel(COMPILER=..., DATE=..., TIME=...), RuntimeVersion(14)", and the runtime version in it."""
    import ctypes

    try:
        handle = ctypes.CDLL(library)
        function = handle.edgetpu_version
    except (OSError, AttributeError) as error:
        return {"libedgetpu_version": None, "runtime_version": None, "libedgetpu_error": str(error).splitlines()[0]}
    function.restype = ctypes.c_char_p
    version = (function() or b"").decode(errors="replace")
    found = re.search(r"RuntimeVersion\((\d+)\)", version)
    return {"libedgetpu_version": version, "runtime_version": int(found.group(1)) if found else None}


class EdgeTPUBackend(LiteRTBackend):
    """A model compiled by edgetpu_compiler (the artifact's model_edgetpu.tflite), run through
    libedgetpu's delegate. Backend option `device` picks one Edge TPU ("usb", "usb:0", "pci:0")."""

    name = "edgetpu"
    accelerator = "edgetpu"
    packages = ("pycoral",)
    # model.tflite is the int8 model the compiler compiled: LiteRT runs it on the CPU as it is.
    cpu_fallback = "litert"

    def _delegates(self, module) -> list:
        options = {"device": str(self.options["device"])} if self.options.get("device") else None
        try:
            return [module.load_delegate(EDGETPU_LIBRARY, options)]
        except (ValueError, OSError) as error:
            raise RuntimeUnavailable(f"{self.name}: cannot load {EDGETPU_LIBRARY} ({error}); {GET_LIBEDGETPU}") from None

    @classmethod
    def unusable(cls, artifact) -> str | None:
        record = edgetpu_record(artifact)
        if record.get("compiled"):
            return None
        return (f"{artifact.path}: {record.get('status')} ({record.get('reason')}); the Edge TPU runs only compiled models: "
                "convert again with an edgetpu_compiler in the coral image (docs/coral.md)")

    def _model_path(self) -> Path:
        why = self.unusable(self.artifact)
        if why:
            raise RuntimeUnavailable(why)
        return self.artifact.member(edgetpu_record(self.artifact)["file"], "Edge TPU model")

    def _tensor_indices(self) -> dict[str, int]:
        if self.interpreter.get_signature_list():
            return super()._tensor_indices()
        # The manifest maps by the int8 model's signature names. A compiled model without its
        # SignatureDefs is matched through that model, whose I/O tensors it keeps by name.
        by_name = {d["name"]: d["index"] for d in self.interpreter.get_input_details() + self.interpreter.get_output_details()}
        return {name: by_name[tensor] for name, tensor in signature_tensors(self.artifact.model_path()).items() if tensor in by_name}

    @classmethod
    def detect_accelerator(cls, sysroot: str = "/") -> dict:
        """A Coral USB Accelerator (by USB id) or a PCIe/M.2 Edge TPU (/dev/apex_N), and libedgetpu
        with the version its C API reports (when it is found)."""
        import glob
        import os

        usb = []
        for device in glob.glob(os.path.join(sysroot, "sys/bus/usb/devices/*")):
            ids = (sysfs.read(sysroot, os.path.relpath(os.path.join(device, "idVendor"), sysroot)),
                   sysfs.read(sysroot, os.path.relpath(os.path.join(device, "idProduct"), sysroot)))
            if ids in EDGETPU_USB_IDS:
                usb.append(":".join(str(part) for part in ids))
        pcie = sorted(os.path.basename(p) for p in glob.glob(os.path.join(sysroot, "dev/apex_*")))
        library = sysfs.find_library(sysroot, EDGETPU_LIBRARY)
        found = {"present": bool(usb or pcie), "usb": usb, "pcie": pcie, "libedgetpu": library}
        return {**found, **libedgetpu_version(library)} if library else found

    @classmethod
    def compatibility(cls, manifest: dict, board: dict) -> dict | None:
        """A model compiled for a newer Edge TPU runtime than the board's libedgetpu fails to load
        ("Package requires runtime version (14), which is newer than this runtime version (13)"):
        refused here, before anything runs. {"status": ...} otherwise."""
        wanted = int(manifest.get("options", {}).get("edgetpu_runtime") or 0) or None
        compiled = "model_edgetpu.tflite" in manifest.get("files", {})
        tpu = board.get("accelerators", {}).get(cls.accelerator, {})
        result = {"compiled": compiled, "runtime_version": wanted, "libedgetpu": tpu.get("libedgetpu"),
                  "libedgetpu_runtime_version": tpu.get("runtime_version")}
        if not compiled:
            return {**result, "status": "not-compiled"}
        if not tpu.get("libedgetpu"):
            return {**result, "status": "no-runtime"}
        have = tpu.get("runtime_version")
        if wanted and have and have < wanted:
            raise ArtifactError(f"{manifest['artifact']['file']} was compiled for Edge TPU runtime {wanted} but this board's "
                                f"{tpu['libedgetpu']} is runtime {have}: the delegate would refuse it (\"Package requires runtime version "
                                f"({wanted}), which is newer than this runtime version ({have})\"); install a newer libedgetpu, or "
                                f"convert with --option edgetpu_runtime={have}")
        return {**result, "status": "ok" if have else "unknown-runtime-version"}


BACKENDS = (LiteRTBackend, EdgeTPUBackend)
