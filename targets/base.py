"""What a target is: a row of data the controller reads, and a converter class the worker runs
inside the target's toolchain image.

This module imports nothing heavy: the controller reads the table on the host, and the worker
creates one `Converter` per job inside the image; converters import their vendor SDK lazily,
in the methods that need it. Nothing here (or in any target) imports the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets.job import Job

class TargetError(LookupError):
    """An unknown target name; the controller turns it into its one-line user error."""


class RequestError(ValueError):
    """The model or options as given cannot be converted by this toolchain, and the user fixes
    it (an op the parser does not import, a mean with the wrong number of channels). The worker
    exits REQUEST_EXIT for it: the controller shows the line and keeps nothing, where a
    toolchain that raised (TOOLCHAIN_EXIT) is remembered for its cache key."""


REQUEST_EXIT = 2
TOOLCHAIN_EXIT = 3


@dataclass(frozen=True)
class Option:
    """A target-specific option: its allowed values and the default."""

    name: str
    choices: tuple[str, ...]
    default: str
    help: str
    applies_to: tuple[str, ...] = ()  # quantization modes it is valid with; () means all
    # Free-form options (no choices): parse(value) returns the normalized value or raises
    # ValueError saying what is wrong.
    parse: Callable[[str], str] | None = None


def worker_exit(error: Exception) -> int:
    """The exit status of a worker that raised `error`, after one line for the controller (the
    trace goes to the log first): REQUEST_EXIT for the user's fix, TOOLCHAIN_EXIT otherwise."""
    import traceback

    traceback.print_exc()
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, RequestError):  # already the user's line: what is wrong and the fix
        print(f"edgeship-worker-error: {first}", flush=True)
        return REQUEST_EXIT
    print(f"edgeship-worker-error: {type(error).__name__}: {first}", flush=True)
    return TOOLCHAIN_EXIT


def op_counts(ops: dict) -> str:
    """An op report's op types and counts for a summary line: "Conv 12, Relu 12"."""
    return ", ".join(f"{name} {count}" for name, count in ops["ops"].items())


def log(message: str) -> None:
    """A progress line for the controller, which shows lines with this prefix as they come."""
    print(f"edgeship-worker: {message}", flush=True)


class Converter:
    """One conversion job inside the target's image: its state lives on `self`.

    The worker calls, in this order: `reference` (fp32 outputs of the source; ONNX sources are
    run by ONNX Runtime here), `convert`, `op_report`, `io_map`, `run_converted`, and `analyse`
    when an output misses its tolerance; then `close`. `inspect` reads the declared I/O of a
    non-ONNX source in a short run of its own.
    """

    def __init__(self, target: Target, job: Job, workdir: Path, log: Callable[[str], None] = log):
        self.target, self.job, self.workdir, self.log = target, job, workdir, log
        self.out = Path(job.out)

    # -- what every target implements -----------------------------------------------------
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        """Write the artifact into self.workdir; return its path."""
        raise NotImplementedError

    def op_report(self, artifact: Path) -> dict:
        """{"ops": {type: count}, "op_count", "inputs", "outputs", "file_size", ...target's own keys}."""
        raise NotImplementedError

    def io_map(self, artifact: Path) -> dict:
        """How source tensors map onto the artifact's: {"inputs"/"outputs": {source name: {"name", "shape", "perm"}}}."""
        raise NotImplementedError

    # -- what a target may override ---------------------------------------------------------
    def inspect(self) -> tuple[list[dict], list[dict]]:
        """Declared inputs/outputs of a non-ONNX source (ONNX is read on the host)."""
        raise NotImplementedError(f"target {self.target.name} reads no {self.job.source.format} sources")

    def reference(self, samples: list[dict]) -> list[dict]:
        """fp32 outputs of the source model: ONNX Runtime on the CPU, one thread."""
        if self.job.source.format != "onnx":
            raise NotImplementedError(f"target {self.target.name} has no fp32 reference for {self.job.source.format} sources")
        import onnxruntime

        from targets.freeze import feeds

        # kept: a stateful model's sequences call this once per step (edgeship_runtime.sequence.carry_batched)
        session = getattr(self, "_reference_session", None)
        if session is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1  # one thread: the same summation order on every run
            options.inter_op_num_threads = 1
            session = self._reference_session = onnxruntime.InferenceSession(self.job.source.path, options,
                                                                             providers=["CPUExecutionProvider"])
        names = [spec["name"] for spec in self.job.outputs]
        frozen = feeds((self.job.graph or {}).get("input_values") or {})  # the source still takes its frozen inputs (--input-value)
        return [dict(zip(names, session.run(names, {**sample, **frozen}))) for sample in samples]

    def run_converted(self, artifact: Path, io_mapping: dict, samples: list[dict]) -> list[dict]:
        """The converted model's outputs through the board runtime's backend for the target, so
        x86 accuracy is measured on the code path a board uses. Targets whose artifact only
        runs on their accelerator override this with the vendor's simulator."""
        return [self.converted_backend(artifact, io_mapping).infer(sample) for sample in samples]

    def converted_backend(self, artifact: Path, io_mapping: dict):
        """The board runtime's backend loaded with `artifact`, kept open while the same file (by
        path, size and time) and mapping are asked for again: a stateful model's sequences run
        one step per call. Closed on leaving the converter, or when another artifact is asked for."""
        import json

        from edgeship_runtime.backends import backend_class

        stat = artifact.stat()
        key = (str(artifact), stat.st_size, stat.st_mtime_ns, json.dumps(io_mapping, sort_keys=True))
        kept = getattr(self, "_converted", None)
        if kept is None or kept[0] != key:
            self.close_converted()
            provisional = self.job.provisional_artifact(self.out, artifact, io_mapping, self.target.runtime_backend)
            self._converted = (key, backend_class(self.target.runtime_backend)(provisional, threads=1).load())
        return self._converted[1]

    def close_converted(self) -> None:
        kept = getattr(self, "_converted", None)
        if kept is not None:
            del self._converted
            kept[1].close()

    def analyse(self, samples: list[dict]) -> dict | None:
        """A per-layer accuracy analysis when an output misses its tolerance (None: none offered)."""
        return None

    def rescuer(self, calibration: list[dict], samples: list[dict], reference: list[dict]) -> Any:  # a targets.rescue.Rescuer
        """The int8 rescue of this target (targets/rescue.py): how it ranks layers by the error
        they add and rebuilds with some kept float. Offered by the targets whose table has the
        `rescue` option (rescue_options()); the worker calls it only for them."""
        raise NotImplementedError(f"{type(self).__name__} offers no int8 rescue")

    def close(self) -> None:
        pass

    def __enter__(self) -> Converter:
        return self

    def __exit__(self, *exc) -> None:
        self.close_converted()
        self.close()

    # -- on the controller --------------------------------------------------------------------
    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        """Target-specific lines `invoke convert` prints about a finished artifact (host side,
        no SDK): op placement, toolchain checks."""
        return []


@dataclass(frozen=True)
class Target:
    name: str
    image: str  # folder under images/
    description: str
    source_formats: tuple[str, ...]  # "onnx", "savedmodel", "keras", "tflite"
    quantizations: tuple[str, ...]
    default_quant: str
    artifact_suffix: str
    runtime_backend: str  # the board-side runtime backend that runs the artifact
    converter: type[Converter]
    needs_calibration: tuple[str, ...] = ("int8",)
    # The modes a source format converts to, where that is fewer than `quantizations` (a compiled
    # TFLite file cannot be re-quantized by a TFLite converter): {format: modes}.
    source_quantizations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Other files of a multi-file artifact, beside the converter's file with the same stem
    # (e.g. (".bin",) for weights kept apart from the graph); shipped and hashed with it.
    companion_suffixes: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    # Default-domain ONNX opsets the toolchain reads, and the operator domains beyond ONNX's own
    # it runs (checked on the host before a container starts).
    onnx_opsets: tuple[int, int] = (7, 23)
    onnx_domains: tuple[str, ...] = ()
    # What the x86 accuracy figures measure, when that is not the artifact on its accelerator,
    # and the precision they are measured at when it is not the mode's (jetson: fp32 ONNX).
    measured_with: str = ""
    measured_as: str = ""
    # The image that converts with `--gpus` (one with the vendor's GPU toolchain), if any.
    gpu_image: str = ""
    log_files: tuple[str, ...] = ()  # toolkit logs the worker writes beside the artifact (not shipped)
    toolchain_packages: tuple[str, ...] = ()
    # Device nodes the board's accelerator needs, as systemd DeviceAllow entries (the demo's
    # service opens only these and the camera).
    device_nodes: tuple[str, ...] = ()
    # One sentence for reports: what this target's x86 and fallback figures measure.
    report_note: str = ""
    # Artifact files (by suffix) the toolchain does not write byte for byte the same from the same
    # inputs, and why: `invoke verify` checks their size and the outputs they compute instead.
    not_byte_reproducible: tuple[tuple[str, str], ...] = ()
    # check_request(options, inputs, source_format): raises RequestError when the resolved
    # options do not fit the model's inputs; run on the host once the inputs are known (before
    # the conversion's container starts) and again by the converter.
    check_request: Callable[[dict, list[dict], str], None] | None = None
    # The input dtypes the toolchain and the board's runtime carry (targets/freeze.ONNX_DTYPES
    # names them); a model with another is refused on the host, naming the targets that take it.
    input_dtypes: tuple[str, ...] = ("float32",)

    def quantizations_for(self, source_format: str) -> tuple[str, ...]:
        """The modes a source of this format converts to."""
        allowed = self.source_quantizations.get(source_format)
        return tuple(quant for quant in self.quantizations if allowed is None or quant in allowed)

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)

    def tolerances(self, task: str, quant: str) -> dict:
        """How close the converted model must stay to fp32, by what the model is for (the board
        runtime's table), at the precision the x86 figures are measured at."""
        from edgeship_runtime.tasks import default_tolerances

        return default_tolerances(task, self.measured_as or quant)
