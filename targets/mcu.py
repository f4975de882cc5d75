"""`mcu`: STM32-class microcontrollers through TensorFlow Lite for Microcontrollers (TFLite Micro).

The model becomes a full-int8 TFLite flatbuffer with int8 I/O by the tflite target's conversion
(this converter subclasses it: ONNX through onnx2tf, or Keras/SavedModel, calibrated on the
calibration set). Then every op is checked against the kernels TFLite Micro's
MicroMutableOpResolver registers (targets/mcu_firmware.py), and the tflite-micro Python
interpreter, TFLite Micro's own C++ runtime built for x86_64, runs the model: once to measure the
tensor arena its RecordingMicroAllocator allocates, and on the eval/reference samples for the
accuracy figures. The board profile (`--option board=...`, memory from ST's datasheets) is checked
against that arena and the model's size; a model that does not fit is refused in one line with the
shortfall.

No microcontroller runs anything here, and no Linux board runs the artifact: the manifest names no
board runtime backend, and deploy skips boards of this target. What ships is for a firmware
project (STM32CubeIDE, Zephyr, PlatformIO): model_data.cc (the model as a C array), model_data.h
(its arena size and the resolver's Add calls), and mcu.json (the same figures, the board check).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from targets.base import Option, RequestError, Target
from targets.mcu_firmware import BOARDS, DEFAULT_BOARD, arena_bytes, fit, micro_ops, model_header, model_source
from targets.tflite import TFLiteConverter, interpreter, tflite_op_report

SOURCE_FILE = "model_data.cc"
HEADER_FILE = "model_data.h"
RECORD_FILE = "mcu.json"
# The arena the interpreter is created with to measure what the model uses: far above any board's
# RAM, so a model too big for every board still loads and is refused with its real figure.
MEASURING_ARENA = 64 << 20
NO_MCU = ("no microcontroller here: TFLite Micro's reference kernels ran on x86_64 (the tflite-micro Python interpreter); "
          "the C files are for a firmware build, and no Linux board runs this artifact")


def measure_arena(model: Path) -> int:
    """Bytes of tensor arena TFLite Micro allocates for the model, after one inference of zeros
    (kernels ask for scratch buffers while preparing). The RecordingMicroAllocator prints its
    figures on the C side's stderr, so file descriptor 2 is caught around the call."""
    import numpy as np
    from tflite_micro import runtime

    micro = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=MEASURING_ARENA)
    reader = interpreter(model)
    for position, detail in enumerate(reader.get_input_details()):
        micro.set_input(np.zeros(detail["shape"], detail["dtype"]), position)
    micro.invoke()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            micro.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return arena_bytes(captured.read().decode(errors="replace"))


class MCUConverter(TFLiteConverter):
    """The tflite target's full-int8 conversion, checked against TFLite Micro and a board, as C files."""

    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        model = super().convert(calibration, reference_set)
        report = tflite_op_report(model)
        wrong = [f"{t['name']} ({t['dtype']})" for t in report["inputs"] + report["outputs"] if t["dtype"] != "int8"]
        if wrong:
            raise RuntimeError(f"TensorFlow's converter left {', '.join(wrong)} instead of int8 I/O; TFLite Micro's int8 kernels need it")
        try:
            resolver = micro_ops(report["ops"])
        except ValueError as error:
            raise RequestError(f"{self.job.model_name}: {error}") from None
        arena = measure_arena(model)
        board = BOARDS[self.job.options.get("board", DEFAULT_BOARD)]
        try:
            fits = fit(board, arena, report["file_size"], self.job.model_name)
        except ValueError as error:
            raise RequestError(str(error)) from None
        self.record = {"runs_here": NO_MCU, "arena_bytes": arena, "model_bytes": report["file_size"], "resolver": resolver,
                       "op_count": len(resolver), "board": fits, "files": [SOURCE_FILE, HEADER_FILE]}
        self.log(arena_line(self.record))
        data = model.read_bytes()
        (self.out / SOURCE_FILE).write_text(model_source(data, HEADER_FILE))
        (self.out / HEADER_FILE).write_text(model_header(self.job.model_name, len(data), arena, resolver, fits, report))
        (self.out / RECORD_FILE).write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        return model

    def op_report(self, artifact: Path) -> dict:
        return {**tflite_op_report(artifact), "firmware": self.record}  # the worker puts it in the manifest

    def run_converted(self, artifact: Path, io_mapping: dict, samples: list[dict]) -> list[dict]:
        """The int8 model through TFLite Micro's interpreter (its reference kernels, as a board's
        firmware runs them), fed and read by tensor position: the source's float values
        quantized with each tensor's scale and zero point, in the artifact's layout."""
        import numpy as np

        from edgeship_runtime.backends.base import dequantize, from_layout, quantize, to_layout

        micro, inputs, outputs = self._micro(artifact, io_mapping)
        results = []
        for sample in samples:
            for source, (position, dtype, scale, zero_point, perm) in inputs.items():
                micro.set_input(quantize(to_layout(np.asarray(sample[source], np.float32), perm), dtype, scale, zero_point), position)
            micro.invoke()
            results.append({source: from_layout(dequantize(micro.get_output(position), scale, zero_point), perm)
                            for source, (position, _, scale, zero_point, perm) in outputs.items()})
        return results

    def _micro(self, artifact: Path, io_mapping: dict):
        """(TFLite Micro interpreter, inputs, outputs) for the artifact, kept while it is the same
        file: a stateful model's sequences run one step per call."""
        from tflite_micro import runtime

        stat = artifact.stat()
        key = (str(artifact), stat.st_size, stat.st_mtime_ns, json.dumps(io_mapping, sort_keys=True))
        kept = getattr(self, "_kept_micro", None)
        if kept is not None and kept[0] == key:
            return kept[1]
        reader = interpreter(artifact)
        runner = reader.get_signature_runner(io_mapping.get("signature")) if io_mapping.get("signature") else None
        by_name = ({**runner.get_input_details(), **runner.get_output_details()} if runner else
                   {d["name"]: d for d in reader.get_input_details() + reader.get_output_details()})
        order = {kind: [d["index"] for d in details] for kind, details in
                 (("inputs", reader.get_input_details()), ("outputs", reader.get_output_details()))}

        def placed(kind: str) -> dict:
            table = {}
            for source, mapping in io_mapping[kind].items():
                detail = by_name[mapping["name"]]
                scale, zero_point = detail["quantization"]
                table[source] = (order[kind].index(detail["index"]), detail["dtype"], float(scale), int(zero_point), mapping["perm"])
            return table

        micro = runtime.Interpreter.from_bytes(artifact.read_bytes(), arena_size=MEASURING_ARENA)
        self._kept_micro = (key, (micro, placed("inputs"), placed("outputs")))
        return self._kept_micro[1]

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        record = ops.get("firmware")
        if not record:
            return []
        return [arena_line(record), f"C files for a firmware build: {artifact_dir / SOURCE_FILE}, {artifact_dir / HEADER_FILE}", NO_MCU]


def arena_line(record: dict) -> str:
    board = record["board"]
    return (f"TFLite Micro: tensor arena {record['arena_bytes']} bytes (measured), model {record['model_bytes']} bytes, "
            f"{record['op_count']} resolver ops ({', '.join(record['resolver'])}); fits {board['board']} ({board['part']}) with "
            f"{board['ram_left_bytes'] / 1024:.1f} KB of its {board['arena_block_kb']} KB RAM block and "
            f"{board['flash_left_bytes'] / 1024:.1f} KB of its {board['flash_kb']} KB flash left")


TARGET = Target(
    name="mcu",
    image="mcu",
    description="STM32-class microcontrollers through TFLite Micro: full-int8 TFLite as C source (model_data.cc/.h) with the "
                "tensor arena TFLite Micro measured, checked against the board's RAM and flash",
    source_formats=("onnx", "savedmodel", "keras"),
    quantizations=("int8",),
    default_quant="int8",
    artifact_suffix=".tflite",
    runtime_backend="",  # none: a firmware build runs it, no Linux board (deploy skips boards of this target)
    converter=MCUConverter,
    needs_calibration=("int8",),
    onnx_opsets=(11, 23),  # the tflite target's conversion: onnx2tf reads opset 11 or higher
    options=(
        Option("board", tuple(BOARDS), DEFAULT_BOARD,
               "the microcontroller the model must fit (RAM for the tensor arena, flash for the model; ST datasheet figures)"),
        Option("io_dtype", ("int8",), "int8", "type of the model's inputs and outputs (TFLite Micro's int8 kernels take int8)"),
    ),
    measured_with="TFLite Micro's reference kernels on x86_64 (the tflite-micro Python interpreter); no microcontroller here",
    toolchain_packages=("onnx2tf", "tensorflow", "tf-keras", "ai-edge-litert", "tflite-micro", "onnx", "onnxruntime", "numpy", "protobuf"),
    report_note="mcu accuracy and arena are measured by TFLite Micro's own interpreter on x86_64; no microcontroller runs here, "
                "and no board of the fleet runs the artifact (it is C source for a firmware build).",
)
