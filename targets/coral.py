"""`coral`: the Coral Edge TPU (Dev Board, USB/M.2/PCIe Accelerator) through libedgetpu's delegate.

The Edge TPU runs full-integer TFLite models that Google's `edgetpu_compiler` has compiled for it.
Everything up to the compiler is the tflite target's conversion (this converter subclasses it):
ONNX through onnx2tf, or Keras/SavedModel, to a full-int8 flatbuffer calibrated on the
calibration set, with uint8 (default) or int8 inputs and outputs, static shapes and batch 1, its
weights per-channel (TensorFlow's default, which the compiler takes) or per-tensor.

Then, before any compiler runs, every op of that model is checked against Coral's documented
operator table and its requirements (targets/edgetpu_ops.py), which predicts where the model
splits between the Edge TPU and the CPU. The compiler comes only from Google's apt repository (an
x86_64 .deb that edgeship cannot fetch), so the image has it only when the user gave it one
(docs/coral.md). Where it is installed, it compiles the model; its log is kept, its operation
table parsed and compared with the prediction, and `model_edgetpu.tflite` ships beside the int8
`model.tflite`. Without it, `edgetpu.json` says "not compiled for the Edge TPU".

`model.tflite` stays the artifact's model file in both cases: it is what the compiler compiled
and what a board without an Edge TPU runs on the CPU (labelled as a fallback), and the accuracy
figures are measured on it with LiteRT's CPU kernels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from targets.base import Option, RequestError, Target
from targets.tflite import TFLiteConverter, tflite_op_report

COMPILER = "edgetpu_compiler"
COMPILED_FILE = "model_edgetpu.tflite"  # the compiler's name for model.tflite compiled
RECORD_FILE = "edgetpu.json"  # shipped: whether the model was compiled, for which runtime, the placement
COMPILER_LOG = "edgetpu_compiler.log"  # the compiler's output and operation log (kept, not shipped)
# The compiler's own time-out for one model is 180 s (its -t); this bounds the process around it.
COMPILE_TIMEOUT_S = 900
NOT_COMPILED = "not compiled for the Edge TPU"
HOW_TO_COMPILE = ("the coral image has no edgetpu_compiler (Google ships it only as an x86_64 .deb in its apt repository): "
                  "give the image that .deb as docs/coral.md says, rebuild it with `./dev images.build --target coral` and convert again")
MEASURED_WITH = "the int8 model.tflite on LiteRT's CPU kernels (model_edgetpu.tflite runs only on an Edge TPU)"


def find_compiler() -> str | None:
    """The edgetpu_compiler on PATH (Google's .deb installs /usr/bin/edgetpu_compiler), or None."""
    return shutil.which(COMPILER)


def compiler_version(compiler: str) -> str | None:
    """`edgetpu_compiler --version`: e.g. "16.0.384591198"."""
    from targets.edgetpu_ops import parse_compiler_log

    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60, check=True)
    return parse_compiler_log(result.stdout)["compiler_version"]


def compile_model(compiler: str, model: Path, out_dir: Path, runtime_version: int) -> tuple[int, str, Path | None]:
    """Run edgetpu_compiler on `model` (-s: print the operation table; -m: the lowest Edge TPU
    runtime the result must run on; one Edge TPU subgraph, the default). Returns (exit code, what
    it printed followed by its operation log, the compiled model or None).

    Not check=True: a model the compiler refuses is a finding to record beside the int8 model
    (which still runs on a CPU), with the compiler's own words, not a conversion to throw away."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [compiler, "-s", "-m", str(runtime_version), "-o", str(out_dir), str(model)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    text = "$ " + " ".join(command) + "\n" + result.stdout + result.stderr
    operation_log = out_dir / f"{model.stem}_edgetpu.log"
    if operation_log.is_file():
        text += f"\n# {operation_log.name}\n" + operation_log.read_text(errors="replace")
    compiled = out_dir / f"{model.stem}_edgetpu.tflite"
    return result.returncode, text, compiled if result.returncode == 0 and compiled.is_file() else None


def placement_summary(prediction: dict) -> dict:
    """The figures of a prediction without its per-op list."""
    return {key: prediction[key] for key in ("runtime_version", "tpu_ops", "cpu_ops", "tpu_subgraphs", "first_cpu_op", "split",
                                             "compile_blockers")}


def compile_record(prediction: dict, compiler: str | None, version: str | None, exit_code: int | None, log_text: str,
                   compiled: bool) -> dict:
    """What ops.json's "edgetpu" key holds: the prediction, and the compiler's report compared
    with it when a compiler ran."""
    from targets.edgetpu_ops import compare_with_prediction, parse_compiler_log

    record: dict = {"runtime_version": prediction["runtime_version"], "predicted": prediction, "compiled": compiled,
                    "status": "compiled for the Edge TPU" if compiled else NOT_COMPILED, "file": COMPILED_FILE if compiled else None,
                    "compiler": None, "compiler_report": None, "comparison": None, "reason": None}
    if compiler is None:
        record["reason"] = HOW_TO_COMPILE
        return record
    report = parse_compiler_log(log_text)
    record["compiler"] = {"path": compiler, "version": version or report["compiler_version"], "exit_code": exit_code}
    record["compiler_report"] = report
    if compiled:
        record["comparison"] = compare_with_prediction(prediction, report)
    else:
        errors = report["errors"] or [line for line in log_text.splitlines() if "rror" in line][:1]
        record["reason"] = f"edgetpu_compiler failed (exit {exit_code}): {errors[0] if errors else 'no error line; see ' + COMPILER_LOG}"
    return record


def check_request(options: dict, inputs: list[dict], source_format: str) -> None:
    """The Edge TPU runs batch 1 only (checked on the host, as check_request, and again here)."""
    for spec in inputs:
        shape = spec["shape"]
        if not shape or int(shape[0]) != 1:
            raise RequestError(f"input {spec['name']!r} has shape {shape}: the Edge TPU runs batch 1 only; convert with "
                               f"--input-shape {spec['name']}:{','.join(['1', *[str(d) for d in shape[1:]]])}")


class CoralConverter(TFLiteConverter):
    """The tflite target's full-int8 conversion, then the Edge TPU placement and compiler step."""

    def configure(self, converter, quant: str, calibration: list[dict], signature_inputs: dict) -> None:
        super().configure(converter, quant, calibration, signature_inputs)
        if self.job.options.get("weights") == "per-tensor":
            # TensorFlow's only switch for per-tensor weights is this private attribute (TF 2.4+);
            # per-channel is its default and what the compiler of runtime 13+ takes.
            converter._experimental_disable_per_channel = True

    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        """model.tflite (full int8, via the tflite target), its predicted Edge TPU placement and,
        where the image has the compiler, model_edgetpu.tflite in the artifact folder."""
        check_request(self.job.options, self.job.inputs, self.job.source.format)
        model = super().convert(calibration, reference_set)
        self._check_io(model)
        self.edgetpu = self._place_and_compile(model)
        return model

    def _check_io(self, model: Path) -> None:
        """The Edge TPU takes 8-bit I/O: every input and output must be of the io_dtype asked for."""
        report = tflite_op_report(model)
        wanted = self.job.options["io_dtype"]
        wrong = [f"{t['name']} ({t['dtype']})" for t in report["inputs"] + report["outputs"] if t["dtype"] != wanted]
        if wrong:
            raise RuntimeError(f"TensorFlow's converter left {', '.join(wrong)} instead of {wanted} I/O; the Edge TPU needs 8-bit I/O")

    def _place_and_compile(self, model: Path) -> dict:
        from targets.edgetpu_ops import ops_from_tflite, predict_placement

        runtime_version = int(self.job.options["edgetpu_runtime"])
        prediction = predict_placement(ops_from_tflite(model), runtime_version)
        self.log(placement_line(prediction))
        compiler = find_compiler()
        log_path = self.out / COMPILER_LOG
        if compiler is None:
            log_path.write_text(f"{NOT_COMPILED}: {HOW_TO_COMPILE}\n")
            record = compile_record(prediction, None, None, None, "", False)
            self.log(f"{NOT_COMPILED} (no {COMPILER} in this image)")
        else:
            version = compiler_version(compiler)
            self.log(f"{COMPILER} {version}: compiling for Edge TPU runtime {runtime_version}")
            exit_code, text, compiled = compile_model(compiler, model, self.workdir / "edgetpu", runtime_version)
            log_path.write_text(text)
            if compiled is not None:
                shutil.copyfile(compiled, self.out / COMPILED_FILE)
            record = compile_record(prediction, compiler, version, exit_code, text, compiled is not None)
            self.log(compiled_line(record))
        shipped = {key: record[key] for key in ("compiled", "status", "reason", "file", "runtime_version")}
        shipped["compiler_version"] = (record["compiler"] or {}).get("version")
        shipped["predicted"] = placement_summary(prediction)
        report = record["compiler_report"]
        shipped["compiled_placement"] = {key: report[key] for key in ("tpu_ops", "cpu_ops", "tpu_subgraphs")} if record["compiled"] else None
        (self.out / RECORD_FILE).write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n")
        return record

    def op_report(self, artifact: Path) -> dict:
        return {**tflite_op_report(artifact), "edgetpu": self.edgetpu}

    def run_converted(self, artifact: Path, io_mapping: dict, samples: list[dict]) -> list[dict]:
        """The int8 model.tflite through the board runtime's LiteRT backend on the CPU: the Edge
        TPU backend needs an Edge TPU, and model.tflite is what the compiler compiled."""
        from edgeship_runtime.backends import backend_class

        provisional = self.job.provisional_artifact(self.out, artifact, io_mapping, "litert")
        with backend_class("litert")(provisional, threads=1) as backend:
            return [backend.infer(sample) for sample in samples]

    # -- on the controller ------------------------------------------------------------------------
    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        lines = super().summary(artifact_dir, manifest, ops)
        record = ops.get("edgetpu")
        if not record:
            return lines
        lines.append(placement_line(record["predicted"]))
        if record["compiled"]:
            lines.append(compiled_line(record) + f"; {artifact_dir / COMPILED_FILE}")
        elif record["compiler"]:
            lines.append(f"{NOT_COMPILED}: {record['reason']}; log: {artifact_dir / COMPILER_LOG}")
        else:
            lines.append(f"{NOT_COMPILED}: {record['reason']}")
        return lines


def placement_line(prediction: dict) -> str:
    """One line: the predicted split and the first op that runs on the CPU."""
    total = prediction["tpu_ops"] + prediction["cpu_ops"]
    first = prediction["first_cpu_op"]
    where = (f"first CPU op #{first['index']} {first['op_name']} ({first['reason']})" if first else "every op maps to the Edge TPU")
    line = (f"Edge TPU placement predicted from Coral's op table (runtime {prediction['runtime_version']}): {prediction['tpu_ops']} of "
            f"{total} ops on the Edge TPU, {prediction['cpu_ops']} on the CPU; {where}")
    blockers = prediction.get("compile_blockers") or []
    if blockers:
        more = f" (and {len(blockers) - 1} more, in ops.json)" if len(blockers) > 1 else ""
        line += f"; edgetpu_compiler 16.0 is expected to refuse the model: #{blockers[0]['index']} {blockers[0]['reason']}{more}"
    return line


def compiled_line(record: dict) -> str:
    if not record["compiled"]:
        return f"{NOT_COMPILED}: {record['reason']}"
    report, comparison = record["compiler_report"], record["comparison"]
    verdict = "as predicted" if comparison["agree"] else "DIFFERENT from the prediction (see ops.json edgetpu.comparison)"
    return (f"edgetpu_compiler {record['compiler']['version']}: {report['tpu_ops']} ops on the Edge TPU, {report['cpu_ops']} on the CPU, "
            f"{report['tpu_subgraphs']} Edge TPU subgraph(s), {verdict}")


TARGET = Target(
    name="coral",
    image="coral",
    description="Coral Edge TPU (Dev Board, USB/M.2/PCIe Accelerator): full-integer int8 TFLite, its Edge TPU op placement "
                "predicted, compiled by edgetpu_compiler where the image has it",
    source_formats=("onnx", "savedmodel", "keras"),
    quantizations=("int8",),
    default_quant="int8",
    artifact_suffix=".tflite",
    runtime_backend="edgetpu",
    converter=CoralConverter,
    check_request=check_request,
    needs_calibration=("int8",),
    # the tflite target's conversion: onnx2tf reads opset 11 or higher
    onnx_opsets=(11, 23),
    options=(
        Option("io_dtype", ("uint8", "int8"), "uint8", "type of the model's inputs and outputs (the Edge TPU takes 8-bit I/O)"),
        Option("edgetpu_runtime", ("12", "13", "14"), "14",
               "the oldest Edge TPU runtime (libedgetpu) the model must run on: edgetpu_compiler -m, and the op table predicted with"),
        Option("weights", ("per-channel", "per-tensor"), "per-channel", "how convolution weights are quantized"),
    ),
    measured_with=MEASURED_WITH,
    log_files=(COMPILER_LOG,),
    toolchain_packages=("onnx2tf", "tensorflow", "tf-keras", "ai-edge-litert", "onnx", "onnxruntime", "numpy", "protobuf"),
    # PCIe/M.2 Edge TPUs (and the Dev Board's) are apex devices; the USB Accelerator is a USB device.
    device_nodes=("/dev/apex_0 rw", "char-usb_device rw"),
    report_note="coral accuracy is measured on the int8 model.tflite with LiteRT's CPU kernels; boards without an Edge TPU run "
                "that same model on the CPU, labelled as a fallback.",
)
