"""The small base every task shares (as `backends/base.py` is for backends).

A task is what a model is for. Its module declares, in one place: the record's parameters (default
and kind) and their checks against the model's output shapes, the metrics against fp32 and against
labels, the gates and their tolerances per quantization mode with the reason for each, the headline
reports print, the runtime extra it needs and how the demo reads one sample. The drivers (`record`,
`compare`, `labels`, `postprocess`, `tolerances`) ask the registry for the task and never branch on
its name; see docs/adding-a-task.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.geometry import guess_layout

REQUIRED = object()  # a parameter without a default
QUANT_MODES = ("fp32", "fp16", "dynamic", "int8")


class Headline(NamedTuple):
    """The figures one-line summaries and reports print: a key of `metrics()` and its name, a key of
    `against_labels()` and its name (None/"" when the task has none)."""

    metric: str | None
    name: str
    label_metric: str | None
    label_name: str


class Gate(NamedTuple):
    """One of a task's own gates: the key of `metrics()` it reads, and its name in a failure line."""

    metric: str
    label: str


def not_measurable(reason: str, *keys: str, **figures) -> dict:
    """Metrics that cannot be taken (no boxes, no text, no object): each of `keys` None and the reason
    under "not_measurable". A metric over nothing is not a score: a gate never passes on it."""
    return {**figures, **dict.fromkeys(keys), "not_measurable": reason}


def check_value(key: str, value, kind, where: str):
    """A parameter's value in its canonical type, or ArtifactError. Kinds: a tuple of allowed values,
    "bool", "text", "names" (list of strings), "scales" (4 positive numbers), "size" (2 positive whole
    numbers), "numbers" (a non-empty list of positive numbers), "pairs" (a list of [i, j] whole numbers >= 0: a
    skeleton's edges), "fraction" (0..1), "positive", "count" (whole >= 1), "number"."""
    def bad(expected: str):
        return ArtifactError(f"{where}: task parameter {key}={value!r} must be {expected}")
    if isinstance(kind, tuple):
        if value not in kind:
            raise bad("one of " + ", ".join(kind))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "text":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of class names")
        return value
    if kind in ("scales", "size"):
        count, cast = (4, float) if kind == "scales" else (2, int)
        numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not numbers or len(value) != count or not all(v > 0 for v in value):
            raise bad(f"a list of {count} positive numbers")
        return [cast(v) for v in value]
    if kind == "numbers":  # a non-empty list of positive numbers (an SSD's strides, aspect ratios)
        if not isinstance(value, list) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
            raise bad("a non-empty list of positive numbers")
        return [float(v) for v in value]
    if kind == "pairs":  # a skeleton's edges, each [i, j] keypoint indices
        if not isinstance(value, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)
                for pair in value):
            raise bad("a list of [i, j] pairs of whole numbers >= 0")
        return [[int(i), int(j)] for i, j in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("a number")
    if kind == "fraction" and not 0 <= value <= 1:
        raise bad("between 0 and 1")
    if kind == "positive" and not value > 0:
        raise bad("above 0")
    if kind == "count":
        if value != int(value) or value < 1:
            raise bad("a whole number of at least 1")
        return int(value)
    return float(value)


def dims(shape) -> list:
    """Shape with every dynamic dimension ("?", a name, None, -1) as None."""
    return [d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else None for d in shape]


def image_size(inputs: list[dict] | None) -> list[int] | None:
    """[height, width] of the first input when it is a 4-D image (NCHW or NHWC) with static sides, else None."""
    if not inputs:
        return None
    shape = dims(inputs[0]["shape"])
    layout = guess_layout(shape)
    size = (shape[2:4] if layout == "NCHW" else shape[1:3]) if layout else [None]
    return None if None in size else [int(side) for side in size if side is not None]


def shape_text(shape: list) -> list:
    return ["?" if d is None else d for d in shape]


class Task:
    """One task. Subclasses set the class attributes and override what they have; one instance of
    each is listed in its module's `TASKS` and found by discovery (`edgeship_runtime.tasks.registry`)."""

    name = ""
    kind = ""  # what `postprocess` results are ("kind"), which the demo draws by
    headline = Headline(None, "", None, "")
    extra: str | None = None  # the runtime's pip extra a board needs to judge and read this task's outputs
    params: dict[str, tuple] = {}  # parameter -> (default or REQUIRED, kind for `check_value`)
    # A task whose parameters depend on a sub-choice (detect's decoder): the record key naming it, and
    # per choice its parameters. `parameters()` picks.
    variant_key: str | None = None
    variants: dict[str, dict[str, tuple]] = {}
    gates: dict[str, Gate] = {}  # its own gates (tolerance key -> metric); see `compare`
    # True: the generic per-output gates (cosine, SNR, small outputs' range error) always apply too.
    # False: they apply only when one of the task's own metrics is not measurable (the fallback).
    generic_gates_always = False
    generic_gates: tuple[str, ...] = ("min_cosine", "min_snr_db", "max_range_error")  # which generic gates it carries
    tolerances: dict[str, dict[str, float]] = {}  # quantization mode -> its own gates' limits
    tolerance_reasons: dict[str, str] = {}  # quantization mode -> why those limits
    label_format: str | None = None  # what an eval set's `labels` hold for this task; None: it takes none
    is_fallback = False  # the task of a model nothing says the purpose of
    finds_boxes = False  # its results carry boxes in model-input pixels (the demo maps them to the frame)
    reads_text = False  # it reads text with a character list (the artifact's labels)

    def implied_by(self, class_names: bool, labels: np.ndarray | None) -> bool:
        """Whether a model without a task record is this task, given whether it names classes and
        its eval set's labels (None: none)."""
        return False

    def parameters(self, record: dict, where: str) -> tuple[str, dict[str, tuple]]:
        """(what the parameters belong to, in messages; {key: (default, kind)}) for this record."""
        if self.variant_key is None:
            return self.name, self.params
        variant = record.get(self.variant_key)
        if variant not in self.variants:
            raise ArtifactError(f"{where}: {self.name} needs \"{self.variant_key}\": one of {', '.join(self.variants)} (got {variant!r})")
        return variant, self.variants[variant]

    def check_shapes(self, record: dict, shapes: dict[str, list], labels: list[str] | None, where: str,
                     inputs: list[dict] | None) -> None:
        """ArtifactError unless the completed record fits the outputs' shapes ({name: dims, None dynamic});
        may complete parameters that are read off the shapes."""

    def class_count(self, record: dict, shapes: dict[str, list]) -> int | None:
        """How many classes the record's output scores, where the task reads one class axis and the
        shapes give its size (a labels file must name that many); None otherwise."""
        return None

    def metrics(self, record: dict, reference: list[dict], converted: list[dict], artifact_dir: Path | None) -> dict:
        """The task metric of the converted outputs against fp32's (one dict per sample)."""
        return {}

    def output_figures(self, record: dict, outputs: dict[str, dict], metrics: dict) -> None:
        """Add task figures to the per-output generic figures (in place), if the task has any."""

    def check_labels(self, record: dict, labels: np.ndarray, samples: int, where: str) -> None:
        """ArtifactError unless `labels` fit this task's `label_format` (the driver, labels.check_labels,
        refuses labels for a task without one before it asks the task)."""
        raise ArtifactError(f"{where}: labels were given, but task {self.name!r} has no ground truth to compare with; drop them")

    def against_labels(self, record: dict, outputs: list[dict], labels: np.ndarray, char_list: list[str] | None,
                       artifact_dir: Path | None) -> dict:
        raise ArtifactError(f"against_labels: task {self.name!r} has no ground truth; set the artifact's task to use labels")

    def postprocess(self, record: dict, outputs: dict[str, np.ndarray], labels: list[str] | None, artifact_dir: Path | None) -> dict:
        """ONE sample's outputs (batch axis 1) -> {"kind", "label", "confidence", ...} for the demo."""
        raise NotImplementedError
