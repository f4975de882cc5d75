"""What the demo reads off a frame, by what the model is for (the artifact's task): the model's
outputs turned into a class, boxes on the frame, or text, with the same code the board's check
judges with (edgeship_runtime.tasks). Text is read by a second model: a detector's boxes are cut
out of the frame, warped upright and recognized one by one (PaddleOCR's det -> rec chain)."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import get, postprocess, validate
from edgeship_runtime.tasks.geometry import boxes_to_frame, crop_quad, points_to_frame, quads_to_frame


def task_record(artifact, override: dict | None = None) -> dict:
    """The artifact's task (for manifests from before tasks existed, as `check` reads them), with
    `override`'s keys over it (the demo's --task: another threshold, another decoder), checked again."""
    from edgeship_runtime.check import default_task

    record = default_task(artifact.manifest)
    if override:
        # a new task name starts from that task's defaults; the same name keeps the recorded values
        record = override if override.get("name", record["name"]) != record["name"] else {**record, **override}
    where = "--task" if override else str(artifact.path / "manifest.json")
    return validate(record, artifact.outputs, artifact.labels, where, artifact.manifest.get("inputs"))


class Reader:
    """outputs of one frame -> result dict (boxes in frame pixels)."""

    def __init__(self, artifact, preprocess, task: dict | None = None):
        self.artifact, self.preprocess = artifact, preprocess
        self.task = task_record(artifact, task)

    def read(self, image: np.ndarray, outputs: dict) -> dict:
        result = postprocess(self.task, outputs, self.artifact.labels, self.artifact.path)
        if get(self.task["name"]).finds_boxes:
            transform = self.preprocess.transform(image.shape[:2])
            boxes = result["boxes"]
            if boxes:
                frame_boxes = boxes_to_frame(np.array([b["box"] for b in boxes]), transform)
                quads = [b["quad"] for b in boxes]
                frame_quads = quads_to_frame(np.array(quads), transform) if all(q is not None for q in quads) else None
                for index, box in enumerate(boxes):
                    box["box"] = [round(float(v), 1) for v in frame_boxes[index]]
                    box["quad"] = frame_quads[index].round(1).tolist() if frame_quads is not None else None
        if result.get("points"):  # landmarks, in model-input pixels as boxes are
            result["points"] = points_to_frame(np.array(result["points"]), self.preprocess.transform(image.shape[:2])).round(1).tolist()
        result.pop("mask", None)  # a segment mask is summarized, not drawn or logged
        return result


class TextRecognizer:
    """A text recognizer (task ocr-rec) run on every box a detector found, on its own backend."""

    def __init__(self, artifact, backend, preprocess, max_boxes: int = 16):
        self.artifact, self.backend, self.preprocess, self.max_boxes = artifact, backend, preprocess, max_boxes
        self.task = task_record(artifact)
        if not get(self.task["name"]).reads_text:
            raise ArtifactError(f"--rec {artifact.path}: its task is {self.task['name']}, which reads no text; give a text recognizer's artifact")

    def read(self, image: np.ndarray, result: dict) -> None:
        """Adds "text" and "text_confidence" to each box of a detect result (the best-scored first)."""
        for box in sorted(result.get("boxes", []), key=lambda b: -b["score"])[: self.max_boxes]:
            quad = box["quad"] or [[box["box"][0], box["box"][1]], [box["box"][2], box["box"][1]],
                                   [box["box"][2], box["box"][3]], [box["box"][0], box["box"][3]]]
            crop = crop_quad(image, quad)
            if min(crop.shape[:2]) < 2:
                continue
            outputs = self.backend.infer(self.preprocess(crop))
            read = postprocess(self.task, outputs, self.artifact.labels, self.artifact.path)
            box["text"], box["text_confidence"] = read["text"], read["confidence"]
        texts = [box["text"] for box in result.get("boxes", []) if box.get("text")]
        result["kind"] = "ocr"
        result["texts"] = texts
        result["label"] = " | ".join(texts[:3]) if texts else "no text"
