"""What a model is for, and how to judge and read its outputs by it (numpy only at import time).

One module per task (classify, detect, segment, ocr_rec, generic: each a `base.Task` listed in its
`TASKS`), found by discovery into `registry`; `compare`, `labels`, `postprocess`, `record` and
`tolerances` are short drivers that ask the registry. Shared by the conversion worker (inside
toolchain images), `edgeship-runtime check` on the board and the camera demo. OpenCV (contours,
rotated rectangles, NMS, resizing) and rapidfuzz (edit distance) are imported by the functions that
need them; without them those raise RuntimeUnavailable naming the `vision` extra.
"""

from __future__ import annotations

from edgeship_runtime.tasks import registry
from edgeship_runtime.tasks.base import Headline, Task
from edgeship_runtime.tasks.compare import compare
from edgeship_runtime.tasks.geometry import boxes_to_frame, boxes_to_input, fit_transform, letterbox, match_boxes
from edgeship_runtime.tasks.labels import against_labels, check_labels
from edgeship_runtime.tasks.postprocess import postprocess
from edgeship_runtime.tasks.record import validate
from edgeship_runtime.tasks.registry import all_tasks, extra_of, fallback, get, implied, names
from edgeship_runtime.tasks.tolerances import default_tolerances, generic_tolerances


def __getattr__(name: str):
    """The tables callers used before tasks were modules, read off the registry."""
    from edgeship_runtime.tasks.decoders import DECODERS

    tables = {
        "TASK_NAMES": lambda: names(),
        "HEADLINES": lambda: {task.name: task.headline for task in all_tasks()},
        "TASK_EXTRAS": lambda: {task.name: task.extra for task in all_tasks() if task.extra},
        "DECODERS": lambda: tuple(DECODERS),
    }
    if name in tables:
        return tables[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Headline", "Task", "against_labels", "all_tasks", "boxes_to_frame", "boxes_to_input", "check_labels", "compare",
           "default_tolerances", "extra_of", "fallback", "fit_transform", "generic_tolerances", "get", "implied", "letterbox",
           "match_boxes", "names", "postprocess", "registry", "validate"]
