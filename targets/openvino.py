"""`openvino`: CPU boards (x86_64 and aarch64) through OpenVINO's CPU plugin, the model as
OpenVINO IR: `model.xml` (the graph) with its weights beside it in `model.bin`.

- **fp32**: OpenVINO's converter (`ov.convert_model`, its own ONNX frontend) with the
  inputs fixed to the conversion's static shapes; weights stay fp32.
- **fp16**: the same IR with its weights compressed to fp16 (`ov.save_model(...,
  compress_to_fp16=True)`): half the file. The IR still takes and gives float32; the CPU
  plugin decompresses the weights when it compiles the model.
- **int8**: NNCF's post-training quantization (`nncf.quantize`, its default `performance`
  preset: symmetric int8 weights per channel and int8 activations) calibrated on the
  calibration set; the IR holds FakeQuantize layers, which the CPU plugin runs as int8
  kernels, and float32 I/O. NNCF and what it needs (SciPy, scikit-learn, NetworkX) are about
  250 MB of the image's 850 MB and resolve to binary wheels like the rest of the lock, which
  is cheap next to a mode every CPU board gains from.

Accuracy on x86 runs the IR through the board runtime's `openvino` backend, which fixes the
plugin's inference precision at f32 (see edgeship_runtime.backends.openvino): left alone, the
plugin computes in bf16 on x86 CPUs with AVX512_BF16/AMX and in f16 on ARM, and x86 could not
measure what a board computes.

aarch64 boards: OpenVINO 2026.4.1's aarch64 wheel is manylinux_2_35 (glibc 2.35; 2024.0 was the
last release with a manylinux_2_28 one), and the board wheelhouse (edgeship/fleet/wheels.py)
fetches aarch64 wheels up to manylinux_2_28 only, so a deploy to an aarch64 board cannot
resolve the `openvino` extra yet.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from targets.base import Converter, Target, op_counts

# IR nodes that are no computation: graph inputs/outputs and weights (counted apart).
_NOT_OPS = ("Parameter", "Result", "Constant")


def _read_ir(artifact: Path):
    import openvino as ov

    return ov.Core().read_model(str(artifact))  # reads the weights from model.bin beside it


def _describe(port) -> dict:
    shape = port.get_partial_shape()
    return {"name": port.get_any_name(), "names": sorted(port.get_names()),
            "shape": [dim.get_length() if dim.is_static else "?" for dim in shape],
            "dtype": port.get_element_type().to_dtype().name, "quantization": [0.0, 0]}


def ir_op_report(artifact: Path) -> dict:
    """Op types and counts of an OpenVINO IR, its weight constants, its I/O tensors and the
    size of both files."""
    model = _read_ir(artifact)
    types = Counter(op.get_type_name() for op in model.get_ordered_ops())
    ops = {name: count for name, count in sorted(types.items()) if name not in _NOT_OPS}
    weights = artifact.with_suffix(".bin")
    return {"ops": ops, "op_count": sum(ops.values()), "constants": types.get("Constant", 0),
            "inputs": [_describe(port) for port in model.inputs], "outputs": [_describe(port) for port in model.outputs],
            "file_size": artifact.stat().st_size + weights.stat().st_size, "graph_file_size": artifact.stat().st_size,
            "weights_file_size": weights.stat().st_size}


def stable_names(model) -> None:
    """Name every node that has no name of its own by its place in the graph.

    OpenVINO names such nodes (the ones NNCF adds, for one) after a counter of every node the
    process has made, so the same conversion wrote Constant_31595 in one run and Constant_31597
    in the next; named by place, the same inputs give the same IR bytes."""
    for place, op in enumerate(model.get_ordered_ops()):
        if op.get_friendly_name() == op.get_name():  # no friendly name set: get_name() is Type_<counter>
            op.set_friendly_name(f"{op.get_type_name()}_at{place}")


class OpenVINOConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        import openvino as ov

        # The cleaned graph has static shapes already; saying them keeps the IR static whatever it reads.
        shapes = [(self.job.graph_name(spec["name"]), ov.PartialShape(spec["shape"])) for spec in self.job.inputs]
        model = ov.convert_model(self.job.model_path, input=shapes)
        self.log(f"ONNX read by OpenVINO {ov.get_version()}: {len(model.get_ordered_ops())} IR nodes")
        if self.job.quant == "int8":
            model = self._quantize(model, calibration)
        stable_names(model)
        artifact = self.workdir / "model.xml"
        # save_model compresses weights to fp16 unless told otherwise: say it for every mode.
        ov.save_model(model, str(artifact), compress_to_fp16=self.job.quant == "fp16")
        return artifact

    def _quantize(self, model, calibration: list[dict]):
        import nncf

        self.log(f"NNCF {nncf.__version__}: post-training int8 quantization on {len(calibration)} calibration samples")
        # Samples come by source tensor name; the model reads the cleaned graph's names.
        dataset = nncf.Dataset(calibration, lambda sample: {self.job.graph_name(name): value for name, value in sample.items()})
        # Every sample, not NNCF's default subset of 300: the user chose the calibration set.
        return nncf.quantize(model, dataset, subset_size=len(calibration))

    def op_report(self, artifact: Path) -> dict:
        return ir_op_report(artifact)

    def io_map(self, artifact: Path) -> dict:
        """The ONNX frontend keeps each ONNX tensor name among its port's names, and the layout."""
        model = _read_ir(artifact)
        mapping = {}
        for kind, specs, ports in (("inputs", self.job.inputs, model.inputs), ("outputs", self.job.outputs, model.outputs)):
            by_name = {name: port for port in ports for name in port.get_names()}
            names = {spec["name"]: self.job.graph_name(spec["name"]) for spec in specs}
            missing = [name for name in names.values() if name not in by_name]
            if missing:
                found = sorted(name for port in ports for name in port.get_names())
                raise RuntimeError(f"{artifact.name} has no {kind} named {missing} (its {kind}: {found}); "
                                   f"OpenVINO's ONNX frontend renamed them, report it with the model")
            mapping[kind] = {source: {"name": name, "shape": _describe(by_name[name])["shape"], "perm": None} for source, name in names.items()}
        return mapping

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        # manifest["artifact"]["size"] is model.xml alone; the weights are in model.bin.
        if "weights_file_size" not in ops:
            return []
        return [f"OpenVINO IR: {ops['op_count']} ops ({op_counts(ops)}); "
                f"model.xml {ops['graph_file_size']} bytes + model.bin {ops['weights_file_size']} bytes"]


TARGET = Target(
    name="openvino",
    image="openvino",
    description="CPU boards (x86_64 and aarch64) through OpenVINO's CPU plugin, the model as OpenVINO IR",
    source_formats=("onnx",),
    quantizations=("fp32", "fp16", "int8"),
    default_quant="fp16",
    artifact_suffix=".xml",
    companion_suffixes=(".bin",),
    runtime_backend="openvino",
    converter=OpenVINOConverter,
    needs_calibration=("int8",),
    # OpenVINO 2026.4.1's ONNX frontend converted opsets 1 to 25 (Relu/Add, measured); the fp32
    # reference runs on ONNX Runtime 1.23, which reads 7 to 23, so that range holds here too.
    onnx_opsets=(7, 23),
    toolchain_packages=("openvino", "nncf", "onnxruntime", "numpy"),
    report_note="openvino accuracy is measured by running the IR on OpenVINO's CPU plugin at f32 inference precision, as boards run it.",
    input_dtypes=("float32", "int64", "int32", "uint8", "bool"),  # the IR keeps the ONNX input's element type
)
