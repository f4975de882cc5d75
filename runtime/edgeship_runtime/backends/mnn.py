"""MNN backend: a `.mnn` model on MNN's CPU backend (the `MNN` wheel: manylinux x86_64 and
aarch64 wheels for CPython 3.8 to 3.14), through its Module API.

The precision is MNN's `high` unless the backend option `precision` says otherwise: fp32
arithmetic, as the conversion measured. `low` lets MNN compute in fp16 on ARMv8.2 cores that
have it (faster, no longer the manifest's figures); `normal` allows MNN's lossier fp32 kernels.
An int8 model runs its int8 convolutions whatever the precision. The thread count is MNN's
`numThread`: the board's --threads, else MNN's default of 4; the one used is in `engine_record`,
which bench reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Iterator

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

PRECISIONS = ("high", "normal", "low")
DEFAULT_THREADS = 4  # MNN's own default numThread for the CPU backend


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """MNN's C++ prints to file descriptor 1 as it loads ("The device supports: ...", "MNN use
    high precision"), where `edgeship-runtime check` and `bench` write their JSON: those lines go
    to stderr instead. They go through the C library's stdout buffer, which a pipe (ansible's
    command module, a subprocess) holds until exit, after the JSON: it is flushed while fd 1 is
    still stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)


def _flush_c_stdio() -> None:
    """fflush(NULL): every C stdio stream's buffer written out now (a no-op where there is no libc to call)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


class MNNBackend(Backend):
    name = "mnn"
    accelerator = "cpu"
    extra = "mnn"
    # MNN's Module API (what inference runs) has no per-op hook; its Session API calls back before and after each op
    profiler = "MNN's per-operator callbacks (Interpreter.runSessionWithCallBackInfo), each op timed from its begin to its end"
    packages = ("mnn",)

    def _load(self) -> None:
        self.config = self.settings()
        self._input_names = [m["name"] for m in self._inputs.values()]
        self._output_names = [m["name"] for m in self._outputs.values()]
        with stdout_to_stderr():
            try:
                import MNN
            except ImportError:
                raise RuntimeUnavailable("the MNN backend needs the `MNN` package (pip install 'edgeship-runtime[mnn]')") from None
            self._expr = MNN.expr
            # what bench reports as the engine: the threads and precision this run used, and MNN's version
            self.engine_record = {"mnn": MNN.version(), "threads": self.config["numThread"], "precision": self.config["precision"],
                                  "backend": self.config["backend"]}
            self._runtime = MNN.nn.create_runtime_manager((self.config,))
            self._module = MNN.nn.load_module_from_file(str(self.artifact.model_path()), self._input_names, self._output_names,
                                                        runtime_manager=self._runtime)

    def settings(self) -> dict:
        """MNN's runtime configuration for this board: CPU, the precision, the threads."""
        precision = str(self.options.get("precision", "high"))
        if precision not in PRECISIONS:
            # ArtifactError, as for a malformed --backend-option: the CLI prints it as one line.
            raise ArtifactError(f"{self.name}: --backend-option precision={precision} is not one of {', '.join(PRECISIONS)}")
        return {"backend": "CPU", "precision": precision, "numThread": int(self.threads or DEFAULT_THREADS)}

    def _io_details(self) -> dict[str, tuple]:
        # MNNConvert and the quantizer keep float32 model I/O in every mode.
        return {name: (np.dtype(np.float32), 0.0, 0) for name in (*self._input_names, *self._output_names)}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        expr = self._expr
        inputs = [expr.const(np.ascontiguousarray(feeds[name], np.float32), list(feeds[name].shape), expr.NCHW) for name in self._input_names]
        results = self._module.forward(inputs)
        # Convolution outputs come in MNN's packed NC4HW4 layout: back to the ONNX model's NCHW.
        return {name: np.array(expr.convert(value, expr.NCHW).read() if value.data_format == expr.NC4HW4 else value.read(), copy=True)
                for name, value in zip(self._output_names, results)}

    def _profile(self, feeds: dict[str, np.ndarray], runs: int) -> dict[str, tuple[str, float]]:
        """The same model file in an MNN Session of its own, with this run's settings: one warm-up
        run, then `runs` runs whose ops are each timed between MNN's begin and end callbacks (as
        MNN's own timeProfile tool does). MNN's layout moves show as `Raster` ops."""
        import MNN

        clock = time.perf_counter
        started: dict[str, float] = {}
        times: dict[str, tuple[str, float]] = {}

        def begin(tensors, info) -> bool:
            started[info.getName()] = clock()
            return True

        def end(tensors, info) -> bool:
            name = info.getName()
            kind, total = times.get(name, (info.getType(), 0.0))
            times[name] = (kind, total + (clock() - started.pop(name, clock())) * 1000.0)
            return True

        with stdout_to_stderr():
            interpreter = MNN.Interpreter(str(self.artifact.model_path()))
            session = interpreter.createSession(dict(self.config))
            for name in self._input_names:
                value = np.ascontiguousarray(feeds[name], np.float32)
                tensor = interpreter.getSessionInput(session, name)
                if tuple(tensor.getShape()) != value.shape:
                    interpreter.resizeTensor(tensor, value.shape)
                    interpreter.resizeSession(session)
                tensor.copyFrom(MNN.Tensor(list(value.shape), MNN.Halide_Type_Float, value, MNN.Tensor_DimensionType_Caffe))
            interpreter.runSession(session)
            times.clear()
            for _ in range(runs):
                code = interpreter.runSessionWithCallBackInfo(session, begin, end)
                if code != 0:
                    raise RuntimeError(f"mnn: runSessionWithCallBackInfo returned {code} while profiling {self.artifact.model_file.name}")
            del session, interpreter
        return times

    def _set_batch(self, batch: int) -> None:
        """The Module takes any input shape; a graph with a batch of 1 baked into it (a Reshape
        to [1, ...]) answers batch-1 outputs, and is refused."""
        probe = {name: np.zeros([batch, *self._shapes[source][1:]], np.float32)
                 for source, name in ((s, m["name"]) for s, m in self._inputs.items())}
        try:
            wrong = [name for name, value in self._infer(probe).items() if value.shape[:1] != (batch,)]
        except RuntimeError as error:
            raise NotImplementedError(f"{self.artifact.model_file.name} cannot run at batch {batch}: {str(error).splitlines()[0]}") from None
        if wrong:
            raise NotImplementedError(f"{self.artifact.model_file.name} keeps a batch of 1 inside its graph (outputs {wrong}); "
                                      f"it cannot run at batch {batch}")

    def _close(self) -> None:
        del self._module, self._runtime


BACKENDS = (MNNBackend,)
