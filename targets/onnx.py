"""`onnx`: any CPU board with ONNX Runtime (x86 or ARM), the model kept as ONNX.

fp32 passes the checked model through unchanged; int8 is ONNX Runtime's static
quantization (QDQ, per-channel int8 weights, uint8 activations) calibrated on the
calibration set with the `calibration_method` chosen (MinMax, Entropy or Percentile).
Model I/O stays float32.

int8 is for speed, so its recipe is the fast one (measured on PP-OCRv4 det/rec, ONNX Runtime,
one thread, AVX-512 VNNI; benchmarks/int8_speed.py): uint8 activations x int8 weights is the
pair ONNX Runtime's x86 and ARM64 int8 kernels (VNNI vpdpbusd, ARM udot/usdot) are built
for; int8 x int8 fell back to slower kernels (det 1.33x fp32, rec 1.21x). The quantizer then
reads the float graph after targets/onnx_speed.py's exact rewrites (Conv+affine folded,
x*Clip(x+3,0,6)/6 as one HardSwish), which remove the elementwise int8 ops that cost more
than the Conv saved (rec 0.71x -> 0.56x fp32). On an x86 CPU without VNNI, ONNX Runtime's
uint8 x int8 kernel can saturate; the board's `edgeship-runtime check` judges that.

`rescue=auto` (targets/rescue.py): when int8 misses the task's tolerance, ONNX Runtime's
qdq_loss_debug ranks the nodes by the SQNR (against fp32) they lose from their inputs to
their output, and the rebuild keeps the chosen nodes float32 (`nodes_to_exclude`, plus the
graph edit in `keep_float` that stops ONNX Runtime from quantizing them again at load time).
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

from targets.base import Converter, Option, Target
from targets.rescue import Layer, Ranking, Rescuer, db, onnx_macs, rescue_options

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
RANK_SAMPLES = 2  # samples whose every intermediate tensor is kept twice (fp32 and QDQ) while ranking
QUANT_INPUT_SUFFIX = "_QuantizeLinear_Input"  # ONNX Runtime's name for a graph output's tensor before its QuantizeLinear
REMOVABLE_ACTIVATIONS = ("Relu", "Clip")  # the activations ONNX Runtime's QDQ quantizer folds into the preceding QuantizeLinear


class CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over the job's samples (iterable too, as
    qdq_loss_debug.collect_activations reads it)."""

    def __init__(self, samples: list[dict]):
        self._samples = iter(samples)

    def get_next(self):
        return next(self._samples, None)

    def __iter__(self):
        return self._samples


def qdq_quantize(model_path: Path, artifact: Path, calibration: list[dict], method: str = "minmax", kept: tuple[str, ...] = ()) -> Path:
    """ONNX Runtime's static QDQ quantization (per-channel int8 weights, uint8 activations: see
    the module docstring); the nodes in `kept` stay float32 (see keep_float)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                        "percentile": CalibrationMethod.Percentile}[method]
    quantize_static(str(model_path), str(artifact), CalibrationReader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calibrate_method,
                    nodes_to_exclude=list(kept))
    if kept:
        onnx.save(keep_float(onnx.load(str(artifact)), onnx.load(str(model_path)), set(kept)), str(artifact))
    return artifact


def keep_float(qdq, source, kept: set[str]):
    """Make the `kept` nodes of a QDQ model run in float32: they read float tensors, and what they
    write stays float for every reader.

    `nodes_to_exclude` leaves a node's own weights float, but its activations stay quantized: its
    inputs come from DequantizeLinear (their producers quantize them for other readers) and its
    outputs are quantized for int8 readers. ONNX Runtime (1.20+) then quantizes such a node again
    when a session loads the model: its WeightBiasQuantization step gives a Conv/Gemm fed by
    DequantizeLinear a per-tensor int8 weight, and the QDQ fusions turn DQ -> op -> Q into an int8
    kernel. Measured on a model with one outlier-weight Conv: excluded by name, cosine -0.09
    against fp32; edited here, 0.9999. And the int8 error of a tensor with a wide range is in its
    quantization, which only a float output removes. ONNX Runtime's quantizer has no option for
    either, hence the edit: a kept node reads each input before its QuantizeLinear, and the readers
    of its output read it before its QuantizeLinear too (graph outputs keep theirs). A ReLU/Clip
    the quantizer folded into that QuantizeLinear (its clamp stands in for the activation) is put
    back on the float path. Readers of a float output run their arithmetic in float (on their
    int8 weights, dequantized), since no int8 kernel takes a float input.
    """
    import onnx

    producer = {name: node for node in qdq.graph.node for name in node.output}
    readers: dict[str, list] = {}
    for node in qdq.graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))
    source_producer = {name: node for node in source.graph.node for name in node.output}
    present = {node.name for node in qdq.graph.node}
    initializers = {init.name for init in qdq.graph.initializer}
    graph_outputs = {output.name for output in qdq.graph.output}
    restored: dict[str, str] = {}  # fp32 tensor name -> the float tensor kept paths read
    added = []

    def float_of(before: str) -> str:
        """The float tensor equal to the fp32 model's, given the tensor a QuantizeLinear reads."""
        tensor = before[:-len(QUANT_INPUT_SUFFIX)] if before.endswith(QUANT_INPUT_SUFFIX) else before
        if tensor not in restored:
            folded = source_producer.get(tensor)
            restored[tensor] = before
            if folded is not None and folded.op_type in REMOVABLE_ACTIVATIONS and folded.name not in present:
                copy = onnx.helper.make_node(folded.op_type, [before, *folded.input[1:]], [f"{tensor}_float"],
                                             name=f"{folded.name}_float", domain=folded.domain)
                copy.attribute.extend(folded.attribute)
                added.append(copy)
                qdq.graph.initializer.extend(init for init in source.graph.initializer
                                             if init.name in folded.input[1:] and init.name not in initializers)
                initializers.update(folded.input[1:])
                restored[tensor] = copy.output[0]
        return restored[tensor]

    def quantizer_of(name: str):
        """The QuantizeLinear behind a DequantizeLinear output (None for weights and float tensors)."""
        dequantize = producer.get(name)
        quantize = producer.get(dequantize.input[0]) if dequantize is not None and dequantize.op_type == "DequantizeLinear" else None
        return quantize if quantize is not None and quantize.op_type == "QuantizeLinear" else None

    for node in list(qdq.graph.node):
        if node.name not in kept:
            continue
        for index, name in enumerate(node.input):
            quantize = quantizer_of(name)
            if quantize is not None:
                node.input[index] = float_of(quantize.input[0])
        for name in node.output:
            for quantize, _ in [reader for reader in readers.get(name, []) if reader[0].op_type == "QuantizeLinear"]:
                for dequantize, _ in [reader for reader in readers.get(quantize.output[0], []) if reader[0].op_type == "DequantizeLinear"]:
                    if dequantize.output[0] in graph_outputs:
                        continue
                    for reader, index in readers.get(dequantize.output[0], []):
                        reader.input[index] = float_of(name)
    nodes = _topological([*qdq.graph.node, *added], {init.name for init in qdq.graph.initializer} | {i.name for i in qdq.graph.input})
    del qdq.graph.node[:]
    qdq.graph.node.extend(nodes)
    orphans: set[str] = set()
    while True:  # QuantizeLinear/DequantizeLinear pairs nothing reads any more, and then their scales and zero points
        used = {name for node in qdq.graph.node for name in node.input} | graph_outputs
        dead = [node for node in qdq.graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(name in used for name in node.output)]
        if not dead:
            break
        for node in dead:
            orphans.update(node.input[1:])
            qdq.graph.node.remove(node)
    used = {name for node in qdq.graph.node for name in node.input}
    for init in [init for init in qdq.graph.initializer if init.name in orphans and init.name not in used]:
        qdq.graph.initializer.remove(init)
    onnx.checker.check_model(qdq)
    return qdq


def _topological(nodes: list, available: set[str]) -> list:
    """The nodes in an order where each comes after what it reads: passes over the given order,
    so a graph already in order comes back unchanged and a node added at the end moves up."""
    ready, ordered, waiting = set(available), [], list(nodes)
    while waiting:
        progress = []
        for node in waiting:
            if all(not name or name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                progress.append(node)
        if len(progress) == len(waiting):
            raise ValueError(f"graph has a cycle or reads undefined tensors at node {waiting[0].name!r}")
        waiting = progress
    return ordered


def qdq_layers(float_path: Path, qdq_path: Path, samples: list[dict], workdir: Path) -> list[Layer]:
    """Every quantized node of a QDQ model with the SQNR (dB, against the fp32 model on the same
    samples) it loses from its inputs to its output: ONNX Runtime's qdq_loss_debug collects every
    intermediate tensor of both models."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, create_activation_matching, modify_model_output_intermediate_tensors

    debug_float, debug_qdq = workdir / "rank-float.onnx", workdir / "rank-qdq.onnx"
    modify_model_output_intermediate_tensors(str(float_path), str(debug_float))
    modify_model_output_intermediate_tensors(str(qdq_path), str(debug_qdq))
    matched = create_activation_matching(collect_activations(str(debug_qdq), CalibrationReader(samples)),
                                         collect_activations(str(debug_float), CalibrationReader(samples)))
    sqnr = {}
    for name, match in matched.items():
        if match.get("float") and match.get("post_qdq"):
            reference = np.concatenate([np.ravel(value) for value in match["float"]]).astype(np.float64)
            quantized = np.concatenate([np.ravel(value) for value in match["post_qdq"]]).astype(np.float64)
            sqnr[name] = db(float(reference @ reference), float((reference - quantized) @ (reference - quantized)))
    debug_float.unlink()
    debug_qdq.unlink()
    model = onnx.load(str(qdq_path))
    producer = {name: node for node in model.graph.node for name in node.output}

    def tensor_of(name: str) -> str:  # a quantized activation by its fp32 name
        return name[:-len(QUANT_INPUT_SUFFIX)] if name.endswith(QUANT_INPUT_SUFFIX) else name

    layers = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        outputs = [sqnr[tensor_of(name)] for name in node.output if tensor_of(name) in sqnr]
        if not outputs:
            continue  # nothing of this node is quantized
        inputs = []
        for name in node.input:
            dequantize = producer.get(name)
            quantize = producer.get(dequantize.input[0]) if dequantize is not None and dequantize.op_type == "DequantizeLinear" else None
            if quantize is not None and quantize.op_type == "QuantizeLinear" and tensor_of(quantize.input[0]) in sqnr:
                inputs.append(sqnr[tensor_of(quantize.input[0])])
        lost = (min(inputs) if inputs else 200.0) - min(outputs)
        layers.append(Layer(node.name, node.op_type, score=lost, figure="sqnr_lost_db", value=lost, source=(node.name,)))
    return layers


def qdq_ranking(float_path: Path, qdq_path: Path, samples: list[dict], workdir: Path) -> Ranking:
    import onnx

    macs = onnx_macs(onnx.load(str(float_path)))
    layers = [replace(layer, macs=macs.per_layer.get(layer.name, 0)) for layer in qdq_layers(float_path, qdq_path, samples, workdir)]
    return Ranking(layers, macs.total, f"ONNX Runtime qdq_loss_debug on {len(samples)} reference sample(s): the SQNR against fp32 "
                   "each node loses from its inputs to its output", precision="float32")


class OnnxRescuer(Rescuer):
    """Ranks with qdq_loss_debug on the plain int8 build; rebuilds with nodes_to_exclude."""

    def rank(self) -> Ranking:
        converter: OnnxConverter = self.converter  # type: ignore[assignment]
        return qdq_ranking(converter.prepared(), converter.workdir / "model.onnx", self.samples[:RANK_SAMPLES], converter.workdir)

    def build(self, layers: tuple[str, ...]) -> Path:
        converter: OnnxConverter = self.converter  # type: ignore[assignment]
        return converter.quantize(converter.workdir / f"rescue-{len(layers):03d}.onnx", self.calibration, layers)


def onnx_op_report(artifact: Path) -> dict:
    """Operator types and counts of an ONNX artifact, with its I/O tensors."""
    import onnx

    model = onnx.load(str(artifact))
    ops = Counter(node.op_type for node in model.graph.node)
    initializers = {init.name for init in model.graph.initializer}

    def describe(values):
        return [{"name": v.name, "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim],
                 "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name, "quantization": [0.0, 0]}
                for v in values if v.name not in initializers]

    return {"ops": dict(sorted(ops.items())), "op_count": sum(ops.values()), "inputs": describe(model.graph.input),
            "outputs": describe(model.graph.output), "file_size": artifact.stat().st_size}


def identity_io_map(job) -> dict:
    """ONNX in, ONNX out: the same layout, the names of the (cleaned) graph."""
    return {kind: {spec["name"]: {"name": job.graph_name(spec["name"]), "shape": spec["shape"], "perm": None} for spec in specs}
            for kind, specs in (("inputs", job.inputs), ("outputs", job.outputs))}


class OnnxConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        artifact = self.workdir / "model.onnx"
        if self.job.quant == "fp32":
            shutil.copyfile(self.job.model_path, artifact)  # the cleaned graph, checked against fp32 below
            return artifact
        return self.quantize(artifact, calibration)

    def prepared(self) -> Path:
        """The graph ONNX Runtime's quantizer reads: the cleaned graph after its own pre-processing
        and the exact float rewrites of targets/onnx_speed.py (logged)."""
        prepared = self.workdir / "prepared.onnx"
        if not prepared.exists():
            import onnx
            from onnxruntime.quantization.shape_inference import quant_pre_process

            from targets.onnx_speed import speed_up

            quant_pre_process(self.job.model_path, str(prepared), skip_symbolic_shape=True)
            model, rewrites = speed_up(onnx.load(str(prepared)))
            onnx.save(model, str(prepared))
            self.log(f"  float rewrites before int8: {rewrites['conv_affine_folded']} Mul/Add folded into Convs, "
                     f"{rewrites['hard_swish_fused']} HardSwish fused")
        return prepared

    def quantize(self, artifact: Path, calibration: list[dict], kept: tuple[str, ...] = ()) -> Path:
        return qdq_quantize(self.prepared(), artifact, calibration, self.job.options.get("calibration_method", "minmax"), kept)

    def rescuer(self, calibration: list[dict], samples: list[dict], reference: list[dict]) -> Rescuer:
        return OnnxRescuer(self, calibration, samples, reference)

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        from targets.rescue import rescue_summary

        return rescue_summary(manifest)

    def op_report(self, artifact: Path) -> dict:
        return onnx_op_report(artifact)

    def io_map(self, artifact: Path) -> dict:
        return identity_io_map(self.job)


TARGET = Target(
    name="onnx",
    image="onnx",
    description="CPU boards (any architecture) through ONNX Runtime",
    source_formats=("onnx",),
    quantizations=("fp32", "int8"),
    default_quant="fp32",
    artifact_suffix=".onnx",
    runtime_backend="onnxruntime",
    converter=OnnxConverter,
    needs_calibration=("int8",),
    # ONNX Runtime 1.23: every release runs opsets back to 7 (docs/Versioning.md); 24 fails its
    # opset check (measured). It has kernels for its contrib ops and ONNX's ML operators.
    onnx_opsets=(7, 23),
    onnx_domains=("com.microsoft", "ai.onnx.ml"),
    options=(
        Option("calibration_method", CALIBRATION_METHODS, "minmax", "how ONNX Runtime's calibrator sets each tensor's int8 range: minmax "
               "(the observed range), entropy (the range that keeps the histogram's information), percentile (clips the outliers)",
               applies_to=("int8",)),
        *rescue_options(),
    ),
    toolchain_packages=("onnx", "onnxruntime", "numpy", "protobuf"),
    input_dtypes=("float32", "int64", "int32", "uint8", "bool"),  # ONNX Runtime feeds each as it is
)
