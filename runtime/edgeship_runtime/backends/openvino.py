"""OpenVINO backend: an OpenVINO IR (`model.xml`, weights in `model.bin` beside it) on
OpenVINO's CPU plugin, on x86_64 and aarch64 boards (OpenVINO's aarch64 wheels need glibc
2.35: Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm).

Left alone, the CPU plugin picks its own inference precision: bf16 on x86 CPUs with
AVX512_BF16 or AMX, f16 on ARM. That is not the model the controller measured: on an
AVX512_BF16 host the fp32 MobileNetV2 example, in bf16, agreed on top-1 with ONNX Runtime on 12
of 16 samples. So the precision is f32 unless the backend option `precision` says otherwise
(`--backend-option precision=f16` or `bf16`: faster where the CPU has it, no longer the
figures of the artifact's manifest). The IR still decides its weights: fp16 weights are
decompressed, FakeQuantize layers of an int8 IR run as int8 kernels.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

PRECISIONS = ("f32", "f16", "bf16")


class OpenVINOBackend(Backend):
    name = "openvino"
    accelerator = "cpu"
    extra = "openvino"
    packages = ("openvino",)
    profiler = "OpenVINO performance counters (PERF_COUNT, InferRequest.profiling_info)"

    def _load(self) -> None:
        try:
            import openvino
        except ImportError:
            raise RuntimeUnavailable("the OpenVINO backend needs the `openvino` package "
                                     "(pip install 'edgeship-runtime[openvino]')") from None
        precision = str(self.options.get("precision", "f32"))
        if precision not in PRECISIONS:
            # ArtifactError, as for a malformed --backend-option: the CLI prints it as one line.
            raise ArtifactError(f"{self.name}: --backend-option precision={precision} is not one of {', '.join(PRECISIONS)}")
        self._config: dict[str, str | int] = {"INFERENCE_PRECISION_HINT": precision}
        if self.threads:
            self._config["INFERENCE_NUM_THREADS"] = int(self.threads)
        self._core = openvino.Core()
        model = self.artifact.model_path()
        weights = None  # an IR's weights (model.bin beside model.xml), verified as the graph is
        if model.suffix == ".xml":
            weights = str(self.artifact.member(model.with_suffix(".bin").relative_to(self.artifact.path).as_posix(), "weights"))
        self._model = self._core.read_model(str(model), weights) if weights else self._core.read_model(str(model))
        self._compile()

    def _compile(self) -> None:
        self._compiled = self._core.compile_model(self._model, "CPU", self._config)
        self._request = self._compiled.create_infer_request()
        ports = list(self._compiled.inputs) + list(self._compiled.outputs)
        self._port = {name: port for port in ports for name in port.get_names()}

    def _io_details(self) -> dict[str, tuple]:
        names = [m["name"] for m in (*self._inputs.values(), *self._outputs.values())]
        return {name: (np.dtype(self._port[name].get_element_type().to_dtype()), 0.0, 0) for name in names}

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(feeds)  # copies the outputs out of the request's tensors
        return {m["name"]: results[self._port[m["name"]]] for m in self._outputs.values()}

    def _profile(self, feeds: dict[str, np.ndarray], runs: int) -> dict[str, tuple[str, float]]:
        """OpenVINO's performance counters: the model compiled once more with PERF_COUNT, one
        warm-up inference, then each run's per-node real time (the counters hold the last
        inference only). Nodes the plugin fused away or did not run have no time and are left out."""
        compiled = self._core.compile_model(self._model, "CPU", {**self._config, "PERF_COUNT": True})
        request = compiled.create_infer_request()
        request.infer(feeds)
        times: dict[str, tuple[str, float]] = {}
        for _ in range(runs):
            request.infer(feeds)
            for info in request.profiling_info:
                ms = info.real_time.total_seconds() * 1000.0
                if ms > 0:
                    kind, total = times.get(info.node_name, (info.node_type, 0.0))
                    times[info.node_name] = (kind, total + ms)
        del request, compiled
        return times

    def _set_batch(self, batch: int) -> None:
        """Reshape the model's inputs to the batch and compile it again; a graph with a batch of
        1 baked into it (a Reshape to [1, ...]) is refused."""
        previous = {port.get_any_name(): port.get_partial_shape() for port in self._model.inputs}
        try:
            self._model.reshape({name: [batch, *[dim.get_length() for dim in shape][1:]] for name, shape in previous.items()})
            wrong = [port.get_any_name() for port in self._model.outputs if port.get_partial_shape()[0].get_length() != batch]
        except RuntimeError as error:
            self._model.reshape(previous)
            raise NotImplementedError(f"{self.artifact.model_file.name} cannot run at batch {batch}: {str(error).splitlines()[0]}") from None
        if wrong:
            self._model.reshape(previous)
            raise NotImplementedError(f"{self.artifact.model_file.name} keeps a batch of 1 inside its graph (outputs {wrong}); "
                                      f"it cannot run at batch {batch}")
        self._compile()

    def _close(self) -> None:
        del self._request, self._compiled, self._model, self._core


BACKENDS = (OpenVINOBackend,)
