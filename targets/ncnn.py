"""`ncnn`: ARM and x86 CPU boards (Raspberry Pi, RK3588's cores, phones) through Tencent's ncnn,
the model as ncnn's `model.param` (the graph, text) with its weights beside it in `model.bin`.

- **fp32**: pnnx (the PyPI wheel's statically linked converter) reads the cleaned ONNX graph
  at its static input shapes and writes ncnn's param/bin with fp32 weights (`fp16=0`).
- **fp16**: the same with fp16 weights (`fp16=1`, pnnx's default): half the file. The board
  backend turns on ncnn's fp16 storage for it (edgeship_runtime.backends.ncnn), which is what
  ncnn means by an fp16 model; the arithmetic stays fp32 unless the board asks for fp16.
- **int8**: not offered (`--quant int8` is refused on the host). ncnn's table-based quantization is two C++ tools, ncnn2table (the
  calibration table from the calibration set) and ncnn2int8 (int8 weights from the table),
  and neither the ncnn nor the pnnx wheel ships them (ncnn 1.0.20261020: the Python module and
  libgomp; pnnx 20261020: the pnnx binary): edgeship does not re-implement them.

pnnx names the graph's inputs in0, in1, ... and its outputs out0, out1, ... in the ONNX graph's
order, and drops the batch axis of the 4-D (and 3-D) tensors it is given: ncnn's Mat is
(c, h, w) or (c, d, h, w). The io map keeps the source shapes; the backend strips and restores
the batch of 1.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from targets.base import Converter, Target

PNNX_TIMEOUT_S = 900  # a YOLO graph converts in seconds; the bound names pnnx when it hangs
# Param lines that are no computation: the graph inputs and weight blobs (counted apart).
_NOT_OPS = ("Input", "MemoryData")
# pnnx writes an op it has no ncnn layer for under its torch/pnnx name (F.grid_sample,
# Tensor.index, pnnx.Expression, ...): ncnn cannot load such a file.
_UNCONVERTED = re.compile(r"^(F|Tensor|torch|nn|pnnx|prim|aten)\.")


def pnnx_binary() -> Path:
    """The converter binary inside the pnnx wheel (not `import pnnx`: its package imports torch)."""
    return Path(str(importlib.metadata.distribution("pnnx").locate_file("pnnx/pnnx")))


def read_param(path: Path) -> list[dict]:
    """The layers of an ncnn .param file: type, name, input and output blob names."""
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != "7767517":
        raise RuntimeError(f"{path.name} is not an ncnn param file (first line {lines[0][:40] if lines else ''!r}, expected 7767517)")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        count_in, count_out = int(fields[2]), int(fields[3])
        blobs = fields[4:4 + count_in + count_out]
        layers.append({"type": fields[0], "name": fields[1], "inputs": blobs[:count_in], "outputs": blobs[count_in:]})
    return layers


def param_op_report(artifact: Path, inputs: list[dict], outputs: list[dict]) -> dict:
    layers = read_param(artifact)
    types = Counter(layer["type"] for layer in layers)
    ops = {name: count for name, count in sorted(types.items()) if name not in _NOT_OPS}
    weights = artifact.with_suffix(".bin")
    return {"ops": ops, "op_count": sum(ops.values()), "constants": types.get("MemoryData", 0),
            "inputs": inputs, "outputs": outputs,
            "file_size": artifact.stat().st_size + weights.stat().st_size, "graph_file_size": artifact.stat().st_size,
            "weights_file_size": weights.stat().st_size}


class NcnnConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        scratch = self.workdir / "pnnx"
        scratch.mkdir()
        source = scratch / "model.onnx"
        shutil.copyfile(self.job.model_path, source)  # pnnx writes its files beside the model it reads
        shapes = ",".join("[" + ",".join(str(dim) for dim in spec["shape"]) + "]" for spec in self.job.inputs)
        command = [str(pnnx_binary()), source.name, f"inputshape={shapes}", f"fp16={int(self.job.quant == 'fp16')}", "device=cpu"]
        self.log(f"pnnx {importlib.metadata.version('pnnx')}: {' '.join(command[1:])}")
        try:
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pnnx did not finish converting the model within {PNNX_TIMEOUT_S} s") from None
        (self.out / "pnnx.log").write_text(result.stdout + result.stderr)
        param, weights = scratch / "model.ncnn.param", scratch / "model.ncnn.bin"
        if result.returncode != 0 or not param.exists() or not weights.exists():
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"pnnx failed on the model (exit {result.returncode}): {tail[-600:]}")
        unconverted = sorted({layer["type"] for layer in read_param(param) if _UNCONVERTED.match(layer["type"])})
        if unconverted:
            raise RuntimeError(f"pnnx has no ncnn layer for {', '.join(unconverted)}; ncnn cannot load the model "
                               "(see pnnx.log beside the artifact)")
        artifact = self.workdir / "model.param"
        shutil.move(param, artifact)
        shutil.move(weights, artifact.with_suffix(".bin"))
        self.log(f"ncnn param: {len(read_param(artifact))} layers, weights {artifact.with_suffix('.bin').stat().st_size} bytes "
                 f"({'fp16' if self.job.quant == 'fp16' else 'fp32'})")
        return artifact

    def op_report(self, artifact: Path) -> dict:
        describe = [{"name": f"{kind}{index}", "shape": spec["shape"], "dtype": "float32", "quantization": [0.0, 0]}
                    for kind, specs in (("in", self.job.inputs), ("out", self.job.outputs)) for index, spec in enumerate(specs)]
        return param_op_report(artifact, describe[:len(self.job.inputs)], describe[len(self.job.inputs):])

    def io_map(self, artifact: Path) -> dict:
        """pnnx names inputs in0.. and outputs out0.. in the graph's order; the shapes stay the source's."""
        layers = read_param(artifact)
        blobs = {blob for layer in layers for blob in layer["outputs"]}
        inputs = [blob for layer in layers if layer["type"] == "Input" for blob in layer["outputs"]]
        mapping = {}
        for kind, prefix, specs in (("inputs", "in", self.job.inputs), ("outputs", "out", self.job.outputs)):
            names = [f"{prefix}{index}" for index in range(len(specs))]
            missing = [name for name in names if name not in (inputs if kind == "inputs" else blobs)]
            if missing:
                raise RuntimeError(f"{artifact.name} has no {kind} blobs {missing} (Input layers: {inputs}); pnnx named the graph's "
                                   f"{kind} otherwise, report it with the model")
            mapping[kind] = {spec["name"]: {"name": name, "shape": list(spec["shape"]), "perm": None} for spec, name in zip(specs, names)}
        return mapping

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        if "weights_file_size" not in ops:
            return []
        return [f"ncnn: {ops['op_count']} layers ({', '.join(f'{name} {count}' for name, count in ops['ops'].items())}); "
                f"model.param {ops['graph_file_size']} bytes + model.bin {ops['weights_file_size']} bytes"]


TARGET = Target(
    name="ncnn",
    image="ncnn",
    description="ARM and x86 CPU boards through Tencent's ncnn, the model as ncnn param/bin (int8: no ncnn2table/ncnn2int8 in any wheel)",
    source_formats=("onnx",),
    # No int8: ncnn's table-based quantization (ncnn2table, ncnn2int8) is in no wheel (module docstring);
    # the host refuses --quant int8 for ncnn in one line before any container starts.
    quantizations=("fp32", "fp16"),
    default_quant="fp16",
    artifact_suffix=".param",
    companion_suffixes=(".bin",),
    runtime_backend="ncnn",
    converter=NcnnConverter,
    needs_calibration=(),
    onnx_opsets=(7, 23),  # the fp32 reference runs on ONNX Runtime 1.23
    toolchain_packages=("pnnx", "ncnn", "onnxruntime", "numpy"),
    report_note=("ncnn accuracy is measured by running param/bin on ncnn's Python wheel on x86 (fp16 weights with fp16 storage, "
                 "fp32 arithmetic), as boards run it."),
)
