"""LiteRT (TFLite) backend, with the Coral Edge TPU delegate when asked for.

ai-edge-litert is the interpreter package for Python 3.10+ on x86_64 and aarch64;
tflite-runtime is accepted where a board image ships that instead.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime import sysfs
from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import RuntimeUnavailable

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}  # unprogrammed / programmed Coral USB


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
    packages: tuple[str, ...] = ("ai-edge-litert", "tflite-runtime")
    delegates: tuple[str, ...] = ()

    def _load(self) -> None:
        module = _interpreter_module()
        delegates = []
        for library in self.delegates:
            try:
                delegates.append(module.load_delegate(library))
            except (ValueError, OSError) as error:
                raise RuntimeUnavailable(f"{self.name}: cannot load {library} ({error}); install libedgetpu1-std from Coral's apt "
                                         f"repository and plug in the Edge TPU (USB 1a6e:089a/18d1:9302 or /dev/apex_0)") from None
        self.interpreter = module.Interpreter(model_path=str(self.artifact.model_file), num_threads=self.threads,
                                              experimental_delegates=delegates or None)
        self.interpreter.allocate_tensors()
        self._index_tensors()

    def _index_tensors(self) -> None:
        signatures = self.interpreter.get_signature_list()
        if signatures:
            runner = self.interpreter.get_signature_runner(next(iter(signatures)))
            details = {**runner.get_input_details(), **runner.get_output_details()}
            self._tensor = {name: detail["index"] for name, detail in details.items()}
        else:  # a model without signatures: tensors by their own names
            details = self.interpreter.get_input_details() + self.interpreter.get_output_details()
            self._tensor = {detail["name"]: detail["index"] for detail in details}
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


class EdgeTPUBackend(LiteRTBackend):
    """A model compiled by edgetpu_compiler, run through the Edge TPU delegate."""

    name = "edgetpu"
    accelerator = "edgetpu"
    packages = ("pycoral",)
    delegates = (EDGETPU_LIBRARY,)

    @classmethod
    def detect_accelerator(cls, sysroot: str = "/") -> dict:
        """A Coral USB Accelerator (by USB id) or a PCIe/M.2 Edge TPU (/dev/apex_N), and libedgetpu."""
        import glob
        import os

        usb = []
        for device in glob.glob(os.path.join(sysroot, "sys/bus/usb/devices/*")):
            ids = (sysfs.read(sysroot, os.path.relpath(os.path.join(device, "idVendor"), sysroot)),
                   sysfs.read(sysroot, os.path.relpath(os.path.join(device, "idProduct"), sysroot)))
            if ids in EDGETPU_USB_IDS:
                usb.append(":".join(str(part) for part in ids))
        pcie = sorted(os.path.basename(p) for p in glob.glob(os.path.join(sysroot, "dev/apex_*")))
        return {"present": bool(usb or pcie), "usb": usb, "pcie": pcie, "libedgetpu": sysfs.find_library(sysroot, EDGETPU_LIBRARY)}


BACKENDS = (LiteRTBackend, EdgeTPUBackend)
