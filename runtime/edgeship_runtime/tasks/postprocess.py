"""One sample's outputs -> what the demo draws, by the task's module (boxes in model-input pixels: the
demo maps them to the frame with `geometry.boxes_to_frame`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship_runtime.tasks import registry


def postprocess(record: dict, outputs: dict[str, np.ndarray], labels: list[str] | None, artifact_dir: Path | None = None) -> dict:
    """ONE sample's outputs (batch axis 1) for a validated record -> {"kind", "output", "label",
    "confidence", ...}: every kind has "label" and "confidence" (a one-line summary) so the demo's banner
    can show any task; the rest is the task's (classify: "class", "top"; detect: "boxes" [{"box": [x1,
    y1, x2, y2], "quad", "score", "class", "label"}]; text: "text"; segment: "mask", "classes"; generic:
    "outputs" {name: shape}). ssd reads its anchors from `artifact_dir`."""
    result = registry.get(record["name"], "postprocess").postprocess(record, outputs, labels, artifact_dir)
    return {**result, "output": record["output"]}
