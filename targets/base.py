"""What a target is: data the controller reads, plus the conversion it runs in its image.

This module imports nothing heavy: the controller reads the table on the host, and the
worker inside a toolchain image calls the target's functions, which import the vendor SDK
lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# Per quantization mode, how close the converted model must stay to the fp32 reference on
# the reference inputs (worst sample cosine similarity, top-1 agreement over samples).
DEFAULT_TOLERANCES = {
    "fp32": {"min_cosine": 0.9999, "min_top1_agreement": 0.99},
    "fp16": {"min_cosine": 0.999, "min_top1_agreement": 0.98},
    "dynamic": {"min_cosine": 0.99, "min_top1_agreement": 0.95},
    "int8": {"min_cosine": 0.98, "min_top1_agreement": 0.90},
}


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
    needs_calibration: tuple[str, ...] = ("int8",)
    options: tuple[Option, ...] = ()
    tolerances: dict = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    # In-image functions, imported by the worker as "module:function" strings so the
    # controller never imports vendor SDKs. The converted model is run through the board
    # runtime's `runtime_backend`, the same code a board uses.
    convert: str = ""
    op_report: str = ""
    io_map: str = ""
    inspect: str = ""  # declared I/O of non-ONNX sources (ONNX is read on the host)
    reference: str = ""  # fp32 outputs of non-ONNX sources (ONNX runs in ONNX Runtime)
    # Targets whose artifact cannot run on x86 through the board runtime give `simulate`
    # (the vendor's simulator, same process as the build) and may give `analyse` (a
    # per-layer accuracy analysis, run when an output falls below tolerance).
    simulate: str = ""
    analyse: str = ""
    # What the x86 accuracy figures measure, when that is not the artifact on its accelerator.
    measured_with: str = ""
    # The image that converts with `--gpus` (one with the vendor's GPU toolchain), if any.
    gpu_image: str = ""
    log_files: tuple[str, ...] = ()  # toolkit logs the worker writes beside the artifact (not shipped)
    toolchain_packages: tuple[str, ...] = ()

    def option(self, name: str) -> Option | None:
        return next((option for option in self.options if option.name == name), None)


def load_function(spec: str) -> Callable:
    import importlib

    module_name, function_name = spec.split(":")
    return getattr(importlib.import_module(module_name), function_name)
