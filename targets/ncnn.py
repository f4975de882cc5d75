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
  libgomp; pnnx 20261020: the pnnx binary): edgeship does not re-implement them. Debian's archive
  has no ncnn either (checked 2026-12-07: no source or binary package named or mentioning ncnn in
  bookworm, bookworm-backports, trixie or sid), so there is no packaged build to install or
  rebuild, and building them from GitHub's sources is not an option here.

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

from targets.base import Converter, Target, op_counts

LOG_FILE = "pnnx.log"  # pnnx's own output, beside the artifact (not shipped)
PNNX_TIMEOUT_S = 900  # a YOLO graph converts in seconds; the bound names pnnx when it hangs
# Param lines that are no computation: the graph inputs and weight blobs (counted apart).
_NOT_OPS = ("Input", "MemoryData")
# pnnx writes an op it has no ncnn layer for under its torch/pnnx name (F.grid_sample,
# Tensor.index, pnnx.Expression, ...): ncnn cannot load such a file.
_UNCONVERTED = re.compile(r"^(F|Tensor|torch|nn|pnnx|prim|aten)\.")


class UnconvertedOps(RuntimeError):
    """pnnx left ops it has no ncnn layer for in the param file."""


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


def rewrite_for_pnnx(source: Path, destination: Path, fp16: bool) -> list[str]:
    """The graph pnnx reads: HardSigmoid nodes whose slope or offset is not torch's (1/6, 0.5) written as
    Clip(x * alpha + beta, 0, 1), which is what they compute: pnnx 20261020 maps every
    HardSigmoid to torch's and drops the attributes, so PP-OCR's det model (Paddle's slope 0.2)
    came out wrong; and, for fp16, convs with tiny weights rescaled (rescale_tiny_weights).
    Writes `destination` when it rewrote anything; returns one line per node rewritten."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    opset = next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 1)
    nodes, rewritten = [], []
    for index, node in enumerate(model.graph.node):
        attributes = {attribute.name: attribute.f for attribute in node.attribute}
        alpha, beta = attributes.get("alpha", 0.2), attributes.get("beta", 0.5)  # ONNX's defaults
        if node.op_type != "HardSigmoid" or (abs(alpha - 1 / 6) < 1e-6 and abs(beta - 0.5) < 1e-6):
            nodes.append(node)
            continue
        stem = f"ncnn_hardsigmoid_{index}"
        constants = {"alpha": alpha, "beta": beta, "zero": 0.0, "one": 1.0}
        model.graph.initializer.extend(numpy_helper.from_array(np.array(value, np.float32), f"{stem}_{key}") for key, value in constants.items())
        nodes.append(helper.make_node("Mul", [node.input[0], f"{stem}_alpha"], [f"{stem}_scaled"], name=f"{stem}_mul"))
        nodes.append(helper.make_node("Add", [f"{stem}_scaled", f"{stem}_beta"], [f"{stem}_shifted"], name=f"{stem}_add"))
        if opset >= 11:
            nodes.append(helper.make_node("Clip", [f"{stem}_shifted", f"{stem}_zero", f"{stem}_one"], list(node.output), name=f"{stem}_clip"))
        else:  # Clip's bounds were attributes before opset 11
            nodes.append(helper.make_node("Clip", [f"{stem}_shifted"], list(node.output), name=f"{stem}_clip", min=0.0, max=1.0))
        rewritten.append(f"{node.name or node.output[0]}: HardSigmoid alpha {alpha:.6g} beta {beta:.6g} -> Clip(x * alpha + beta, 0, 1)")
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    if fp16:
        rewritten += rescale_tiny_weights(model)
    if rewritten:
        onnx.save(model, str(destination))
    return rewritten


TINY_WEIGHTS = 2.0 ** -8  # a conv whose largest weight is below this loses most of its bits as fp16


def rescale_tiny_weights(model) -> list[str]:
    """fp16 only: a Conv/ConvTranspose whose weights all lie far below 1 gets them (and its bias)
    multiplied by 2^k, and a Mul by 2^-k after it; both exact in binary. PP-OCR det's last conv
    (BatchNorm folded into it by the clean-up) has weights of at most 2.4e-4: as fp16 most of them
    are subnormal with a few bits left, and the detection F1 against fp32 fell to 0."""
    import numpy as np
    from onnx import helper, numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes, rewritten = [], []
    for index, node in enumerate(model.graph.node):
        weight = initializers.get(node.input[1]) if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 else None
        values = numpy_helper.to_array(weight) if weight is not None else None
        largest = float(np.abs(values).max()) if values is not None and values.size else 0.0
        shared = any(uses.get(name, 0) > 1 for name in node.input[1:3] if name)
        if weight is None or values is None or not 0 < largest < TINY_WEIGHTS or shared or values.dtype != np.float32:
            nodes.append(node)
            continue
        shift = int(np.floor(-np.log2(largest)))
        weight.CopyFrom(numpy_helper.from_array(values * np.float32(2.0 ** shift), weight.name))
        if len(node.input) > 2 and node.input[2] in initializers:
            bias = initializers[node.input[2]]
            bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) * np.float32(2.0 ** shift), bias.name))
        stem, output = f"ncnn_rescaled_{index}", node.output[0]
        model.graph.initializer.append(numpy_helper.from_array(np.array(2.0 ** -shift, np.float32), f"{stem}_scale"))
        node.output[0] = f"{stem}_out"
        nodes += [node, helper.make_node("Mul", [f"{stem}_out", f"{stem}_scale"], [output], name=f"{stem}_mul")]
        rewritten.append(f"{node.name or output}: {node.op_type} weights at most {largest:.3g}, stored x 2^{shift}, the output x 2^-{shift}")
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return rewritten


class NcnnConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        try:
            param, weights = self._pnnx(Path(self.job.model_path), "cleaned graph")
        except UnconvertedOps as unconverted:
            graph = self.job.graph or {}
            renamed = graph.get("renamed", {})  # node names do not matter here: the I/O tensors' do
            if graph.get("input_values") or renamed.get("inputs") or renamed.get("outputs"):
                raise RuntimeError(str(unconverted)) from None
            # onnxsim's folding in the clean-up can hide a pattern pnnx fuses (PP-OCR rec's attention
            # became a 5-D reshape and an unbind): the source, which pnnx simplifies its own way, at
            # the same static shapes. Only where the clean-up froze and renamed nothing.
            self.log(f"{unconverted}; pnnx reads the source model instead")
            param, weights = self._pnnx(Path(self.job.source.path), "source")
        artifact = self.workdir / "model.param"
        shutil.move(param, artifact)
        shutil.move(weights, artifact.with_suffix(".bin"))
        self.log(f"ncnn param: {len(read_param(artifact))} layers, weights {artifact.with_suffix('.bin').stat().st_size} bytes "
                 f"({'fp16' if self.job.quant == 'fp16' else 'fp32'})")
        return artifact

    def _pnnx(self, model: Path, what: str) -> tuple[Path, Path]:
        """pnnx on `model` in a scratch folder of its own (it writes its files beside the model it reads)."""
        scratch = self.workdir / f"pnnx-{what.replace(' ', '-')}"
        scratch.mkdir()
        source = scratch / "model.onnx"
        rewrites = rewrite_for_pnnx(model, source, fp16=self.job.quant == "fp16")
        if not rewrites:
            shutil.copyfile(model, source)
        self.rewrites, self.pnnx_read = [f"{what}: {line}" for line in rewrites], what
        for line in self.rewrites:
            self.log(f"rewrite before pnnx: {line}")
        shapes = ",".join("[" + ",".join(str(dim) for dim in spec["shape"]) + "]" for spec in self.job.inputs)
        command = [str(pnnx_binary()), source.name, f"inputshape={shapes}", f"fp16={int(self.job.quant == 'fp16')}", "device=cpu"]
        self.log(f"pnnx {importlib.metadata.version('pnnx')} on the {what}: {' '.join(command[1:])}")
        try:
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pnnx did not finish converting the {what} within {PNNX_TIMEOUT_S} s") from None
        with open(self.out / LOG_FILE, "a") as log_file:
            log_file.write(f"== pnnx on the {what}\n{result.stdout}{result.stderr}")
        param, weights = scratch / "model.ncnn.param", scratch / "model.ncnn.bin"
        if result.returncode != 0 or not param.exists() or not weights.exists():
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"pnnx failed on the {what} (exit {result.returncode}): {tail[-600:]}")
        unconverted = sorted({layer["type"] for layer in read_param(param) if _UNCONVERTED.match(layer["type"])})
        if unconverted:
            raise UnconvertedOps(f"pnnx has no ncnn layer for {', '.join(unconverted)} in the {what}; ncnn cannot load it "
                                 "(see pnnx.log beside the artifact)")
        return param, weights

    def op_report(self, artifact: Path) -> dict:
        describe = [{"name": f"{kind}{index}", "shape": spec["shape"], "dtype": "float32", "quantization": [0.0, 0]}
                    for kind, specs in (("in", self.job.inputs), ("out", self.job.outputs)) for index, spec in enumerate(specs)]
        report = param_op_report(artifact, describe[:len(self.job.inputs)], describe[len(self.job.inputs):])
        rewrites, read = getattr(self, "rewrites", []), getattr(self, "pnnx_read", "cleaned graph")
        if rewrites or read != "cleaned graph":  # the manifest's `rewrites`: what pnnx read and what was changed before
            report["rewrites"] = {"pnnx_read": read, "nodes": rewrites}
        return report

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
        return [f"ncnn: {ops['op_count']} layers ({op_counts(ops)}); "
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
    log_files=(LOG_FILE,),
    onnx_opsets=(7, 23),  # the fp32 reference runs on ONNX Runtime 1.23
    toolchain_packages=("pnnx", "ncnn", "onnxruntime", "numpy"),
    report_note=("ncnn accuracy is measured by running param/bin on ncnn's Python wheel on x86 (fp16 weights with fp16 storage, "
                 "fp32 arithmetic), as boards run it."),
)
