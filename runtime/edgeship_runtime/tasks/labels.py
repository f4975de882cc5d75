"""Ground truth in an eval set (`labels` in the .npz) and the task metric against it: each task module
declares its format (`Task.label_format`), its check and its metric; these drivers ask the registry.
A task without a format (generic) takes no labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import registry


def check_labels(record: dict, labels: np.ndarray, samples: int, where: str) -> None:
    """ArtifactError (one line: where, what is wrong, the format expected) unless `labels` fit the task."""
    if labels is None:
        return
    task = registry.get(record["name"], where)
    if not task.label_format:
        takers = [other.name for other in registry.all_tasks() if other.label_format]
        raise ArtifactError(f"{where}: labels were given, but task {task.name!r} has no ground truth to compare with; "
                            f"drop them or set the task ({', '.join(takers)})")
    task.check_labels(record, np.asarray(labels), samples, where)


def against_labels(record: dict, outputs: list[dict[str, np.ndarray]], labels: np.ndarray,
                   char_list: list[str] | None = None, artifact_dir: Path | None = None) -> dict:
    """The task metric of one model's outputs (one dict per sample) against ground truth checked by
    `check_labels` (e.g. classify accuracy; detect precision/recall/F1 at IoU 0.5; segment mean IoU;
    ocr-rec character accuracy). A metric over nothing (no labelled box, no text) is None, with the
    reason under "not_measurable"."""
    return registry.get(record["name"], "against_labels").against_labels(record, outputs, np.asarray(labels), char_list, artifact_dir)
