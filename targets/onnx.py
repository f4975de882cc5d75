"""`onnx`: any CPU board with ONNX Runtime (x86 or ARM), the model kept as ONNX.

fp32 passes the checked model through unchanged; int8 is ONNX Runtime's static
quantization (QDQ, per-channel int8 weights, int8 activations) calibrated on the
calibration set. Model I/O stays float32.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from targets.base import Converter, Target


class CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over the job's samples."""

    def __init__(self, samples: list[dict]):
        self._samples = iter(samples)

    def get_next(self):
        return next(self._samples, None)


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
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = self.workdir / "prepared.onnx"
        quant_pre_process(self.job.model_path, str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(artifact), CalibrationReader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return artifact

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
    toolchain_packages=("onnx", "onnxruntime", "numpy", "protobuf"),
)
