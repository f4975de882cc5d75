"""`mnn`: CPU boards (ARM and x86) through Alibaba's MNN, the model as one `.mnn` file.

- **fp32**: MNNConvert (from the `MNN` wheel, its `_tools.mnnconvert`) reads the cleaned ONNX
  graph; the inputs keep ONNX's NCHW layout and names.
- **fp16**: the same with `--fp16`: weights stored as fp16 (half the file), computed in fp32
  unless a board's runtime is told to use low precision.
- **int8**: MNN's offline quantizer (`_tools.mnnquant`, the wheel's `quantized.out`) on the fp32
  model, calibrated on the calibration set fed as raw tensors (`input_type: sequence`), with the
  feature method chosen and MAX_ABS weights: int8 convolutions, float32 I/O. EMA by default, not
  MNN's own KL: measured here, KL clipped YOLOv8n's box branch (outputs up to 44 where fp32 has
  665: no box left) and PP-OCR rec's characters, where EMA kept YOLOv8n at cosine 0.9987 and
  rec's argmax; KL took 5x as long. KL kept digits at 100% top-1 agreement (EMA 95%).
  `keep_float` names ops the quantizer leaves in float (MNN's skip_quant_op_names): PP-OCR det,
  no box at int8 under either method, reached detection F1 0.977 against fp32 (passed) with
  `feature_quantize_method=kl keep_float=conv2d_497.tmp_0`, the first convolution of its head,
  whose input range KL clipped.

Both tools are called in a child process with an argument list: they return True whatever
happens (a missing file included), and the quantizer aborts the whole process on some inputs,
so the written file and the child's exit status are the checks. The wheel's own Python wrappers
(`mnnconvert`, `mnnquant` console scripts) are not used: they import a telemetry logger that
runs `pip install` when its SDK is missing, and `mnnquant` passes its arguments in a form the
3.6.1 extension does not take.

Accuracy on x86 runs the file through the board runtime's `mnn` backend at MNN's high precision
(fp32 arithmetic), as boards run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from targets.base import Converter, Option, RequestError, Target, op_counts

FEATURE_METHODS = ("ema", "kl", "admm")
TOOL_TIMEOUT_S = 1800  # MNNConvert on the largest example takes seconds; the quantizer runs every sample through the model twice
LOG_FILE = "mnn-tools.log"  # what MNNConvert and the quantizer printed, beside the artifact (not shipped)
_NOT_OPS = ("Input", "Const")  # graph inputs and weights, counted apart
MNN_UUID_FIELD = 11  # Net.mnn_uuid, the root table's 12th field in MNN's schema (schema/default/MNN.fbs)


def parse_op_names(value: str) -> str:
    """keep_float: MNN op names, comma-separated (MNN names an op after its ONNX node's first
    output, e.g. conv2d_497.tmp_0; `mnn-tools.log` and the quantizer's table list them)."""
    names = [name.strip() for name in value.split(",")]
    bad = [name for name in names if not name or len(name) > 200 or any(c.isspace() or not c.isprintable() or c in "\"\\" for c in name)]
    if bad or len(names) > 1000:
        raise ValueError("not a comma-separated list of MNN op names (no spaces, quotes or empty names)")
    return ",".join(names)


def run_tool(name: str, argv: list[str], what: str, log_path: Path) -> str:
    """Run `_tools.<name>(argv)` of the MNN wheel in a child process; its output (MNN prints to
    stdout from C) is added to `log_path` and comes back. A crash or a hang raises with the tool's
    last lines."""
    command = [sys.executable, "-c", f"import _tools, sys; _tools.{name}(sys.argv)", *argv]  # sys.argv[0] "-c" stands for the program name
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"MNN's {what} did not finish in {TOOL_TIMEOUT_S} s") from None
    output = result.stdout + result.stderr
    with log_path.open("a") as log:
        log.write(f"$ {name} {' '.join(argv)}\n{output}\n")
    if result.returncode != 0:
        tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:])
        raise RuntimeError(f"MNN's {what} failed (exit {result.returncode}): {tail}")
    return output


def fix_uuid(model: Path) -> None:
    """MNNConvert writes a random UUID4 into every file (its AddUUID pass, from std::random_device),
    so two conversions of the same graph differed in those 36 bytes and `invoke verify` could not
    lock fp32 and fp16 files byte for byte. Replace it, in place and at the same length, by a UUID
    made from the file's own bytes (with the UUID zeroed): the same graph, the same file."""
    import hashlib
    import uuid

    from flatbuffers import encode, number_types, table

    data = bytearray(model.read_bytes())
    uoffset = number_types.UOffsetTFlags.packer_type
    net = table.Table(data, encode.Get(uoffset, data, 0))
    slot = net.Offset(4 + 2 * MNN_UUID_FIELD)
    if not slot:
        return  # no UUID written: nothing random in the file
    start = net.Indirect(net.Pos + slot) + 4  # the string's bytes follow its 4-byte length
    length = encode.Get(uoffset, data, start - 4)
    if length != 36 or start + length > len(data):
        raise RuntimeError(f"MNNConvert wrote a {length}-byte mnn_uuid, not a 36-character UUID; its schema changed: update fix_uuid")
    data[start:start + length] = b"0" * length
    data[start:start + length] = str(uuid.UUID(bytes=hashlib.sha256(data).digest()[:16], version=4)).encode()
    model.write_bytes(bytes(data))


def _describe(name: str, var) -> dict:
    return {"name": name, "shape": list(var.shape), "dtype": "float32" if "float" in str(var.dtype) else str(var.dtype).split(".")[-1],
            "layout": str(var.data_format).split(".")[-1], "quantization": [0.0, 0]}


def mnn_op_report(artifact: Path) -> dict:
    """Op types and counts of an MNN model (its weights counted apart), its I/O tensors and size."""
    import MNN

    expr = MNN.expr
    variables = expr.load_as_dict(str(artifact))
    inputs, outputs = expr.get_inputs_and_outputs(variables)
    types = Counter(var.op_type for var in variables.values())
    ops = {name: count for name, count in sorted(types.items()) if name not in _NOT_OPS}
    return {"ops": ops, "op_count": sum(ops.values()), "constants": types.get("Const", 0),
            "inputs": [_describe(name, var) for name, var in sorted(inputs.items())],
            "outputs": [_describe(name, variables[name]) for name in _output_names(artifact)],
            "file_size": artifact.stat().st_size}


def _output_names(artifact: Path) -> list[str]:
    import MNN

    return list(MNN.nn.load_module_from_file(str(artifact), [], []).get_info()["outputNames"])


class MNNConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        artifact = self.workdir / "model.mnn"
        float_model = artifact if self.job.quant != "int8" else self.workdir / "float.mnn"
        argv = ["-f", "ONNX", "--modelFile", self.job.model_path, "--MNNModel", str(float_model), "--bizCode", "edgeship"]
        if self.job.quant == "fp16":
            argv.append("--fp16")
        output = run_tool("mnnconvert", argv, "converter (MNNConvert)", self.out / LOG_FILE)
        if "Converted Success" not in output or not float_model.is_file() or float_model.stat().st_size == 0:
            tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:])
            raise RuntimeError(f"MNNConvert wrote no model: {tail}")
        fix_uuid(float_model)
        self.log(f"MNNConvert: {float_model.name} {float_model.stat().st_size} bytes")
        if self.job.quant == "int8":
            self._quantize(float_model, artifact, calibration)
        return artifact

    def _quantize(self, float_model: Path, artifact: Path, calibration: list[dict]) -> None:
        """MNN's offline quantizer reads each sample from a folder: `<input>.txt` (the values as
        text) and `input.json` (the shapes; without it the 3.6.1 quantizer dies of SIGSEGV)."""
        from edgeship_runtime.names import is_safe

        names = {spec["name"]: self.job.graph_name(spec["name"]) for spec in self.job.inputs}
        unsafe = [name for name in names.values() if not is_safe(name)]
        if unsafe:
            raise RequestError(f"mnn int8: MNN's quantizer reads each input from a file named after it, and {unsafe[0]!r} is no "
                               f"file name; rename the model's input, or convert in fp16")
        shapes = {spec["name"]: list(spec["shape"]) for spec in self.job.inputs}
        folder = self.workdir / "calibration"
        for index, sample in enumerate(calibration):
            place = folder / f"{index:05d}"
            place.mkdir(parents=True)
            for source, name in names.items():
                # %.9g: every float32 back exactly, as the quantizer reads each value into a double
                sample[source].astype("float32").ravel().tofile(place / f"{name}.txt", sep=" ", format="%.9g")
            (place / "input.json").write_text(json.dumps({"inputs": [{"name": names[s], "shape": shapes[s]} for s in names],
                                                          "outputs": [self.job.graph_name(spec["name"]) for spec in self.job.outputs]}))
        method = self.job.options.get("feature_quantize_method", "ema")
        kept = [name for name in self.job.options.get("keep_float", "").split(",") if name]
        config = {"path": str(folder), "input_type": "sequence", "used_sample_num": len(calibration),
                  "feature_quantize_method": method.upper(), "weight_quantize_method": "MAX_ABS",
                  "inputs": [{"name": names[s], "shape": shapes[s]} for s in names], **({"skip_quant_op_names": kept} if kept else {})}
        config_path = self.workdir / "quantize.json"
        config_path.write_text(json.dumps(config))
        self.log(f"MNN offline quantization ({method.upper()} features, MAX_ABS weights) on {len(calibration)} calibration samples"
                 + (f", kept float: {', '.join(kept)}" if kept else ""))
        output = run_tool("mnnquant", [str(float_model), str(artifact), str(config_path)], "offline quantizer", self.out / LOG_FILE)
        if "Quantize model done" not in output or not artifact.is_file() or artifact.stat().st_size == 0:
            tail = " | ".join(line.strip() for line in output.strip().splitlines()[-3:])
            raise RuntimeError(f"MNN's offline quantizer wrote no model: {tail}")

    def op_report(self, artifact: Path) -> dict:
        return mnn_op_report(artifact)

    def io_map(self, artifact: Path) -> dict:
        """MNNConvert keeps ONNX's tensor names and (for inputs) its NCHW layout; the backend
        reads outputs back in NCHW."""
        ops = mnn_op_report(artifact)
        mapping = {}
        for kind, specs in (("inputs", self.job.inputs), ("outputs", self.job.outputs)):
            found = {tensor["name"]: tensor for tensor in ops[kind]}
            names = {spec["name"]: self.job.graph_name(spec["name"]) for spec in specs}
            missing = [name for name in names.values() if name not in found]
            if missing:
                raise RuntimeError(f"{artifact.name} has no {kind} named {missing} (its {kind}: {sorted(found)}); "
                                   f"MNNConvert renamed them, report it with the model")
            mapping[kind] = {source: {"name": name, "shape": [spec["shape"] for spec in specs if spec["name"] == source][0], "perm": None}
                             for source, name in names.items()}
        return mapping

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        if "ops" not in ops:
            return []
        return [f"MNN: {ops['op_count']} ops ({op_counts(ops)}); "
                f"model.mnn {ops['file_size']} bytes"]


TARGET = Target(
    name="mnn",
    image="mnn",
    description="CPU boards (ARM and x86) through Alibaba's MNN, the model as one .mnn file",
    source_formats=("onnx",),
    quantizations=("fp32", "fp16", "int8"),
    default_quant="fp16",
    artifact_suffix=".mnn",
    runtime_backend="mnn",
    converter=MNNConverter,
    needs_calibration=("int8",),
    # The fp32 reference runs on ONNX Runtime 1.23 (opsets 7 to 23); MNNConvert 3.6.1 read
    # opset 13 (digits) and 17 (YOLOv8n) here.
    onnx_opsets=(7, 23),
    options=(
        Option("feature_quantize_method", FEATURE_METHODS, "ema", "how MNN's quantizer sets each activation's int8 range: ema "
               "(a moving average of the observed ranges), kl (the range that keeps the histogram's information; clipped YOLOv8n's "
               "boxes here), admm (an alternating optimisation over all samples at once)", applies_to=("int8",)),
        Option("keep_float", (), "", "MNN op names (comma-separated) the quantizer leaves in float, MNN's skip_quant_op_names: "
               "e.g. conv2d_497.tmp_0 for PP-OCR det with kl (F1 0.977 against fp32; none kept: no box)", applies_to=("int8",), parse=parse_op_names),
    ),
    toolchain_packages=("mnn", "onnxruntime", "numpy"),
    log_files=(LOG_FILE,),
    report_note="mnn accuracy is measured by running the .mnn file on MNN's CPU backend at high (fp32) precision, as boards run it.",
)
