"""frame-decisions: one score per step of a sequence model (voice activity, keyword spotting), decided at a
threshold; the converted model's frame decisions against fp32's, and against labelled frames.

A stateful model is run as sequences with its state carried (edgeship_runtime.sequence), so each
sample here is one step, in order, and its decision is what the model says of that step (speech
or not) given everything before it.
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, not_measurable, shape_text


def scores(outputs: list[dict], output: str) -> np.ndarray:
    """Every step's score(s), in order (a step's output holds one score per batch item)."""
    return np.concatenate([np.ravel(np.asarray(sample[output], np.float64)) for sample in outputs]) if outputs else np.zeros(0)


def decisions(record: dict, outputs: list[dict]) -> np.ndarray:
    return scores(outputs, record["output"]) > record["threshold"]


def decision_figures(truth: np.ndarray, found: np.ndarray, what: str) -> dict:
    """Agreement of two runs of frame decisions, and the F1 of `found`'s active frames against
    `truth`'s; not measurable when `truth` (named `what` in the reason) has no active frame: a
    detector that says nothing anywhere would agree with it everywhere."""
    counts = {"frames": int(truth.size), "active": int(np.count_nonzero(truth)), "found_active": int(np.count_nonzero(found))}
    if not counts["active"]:
        return not_measurable(f"{what} marks no frame active", "frame_agreement", "active_f1", **counts)
    hits = int(np.count_nonzero(truth & found))
    precision = hits / counts["found_active"] if counts["found_active"] else 0.0
    recall = hits / counts["active"]
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"frame_agreement": float(np.mean(truth == found)), "active_f1": f1, "active_precision": precision, "active_recall": recall,
            **counts}


class Frames(Task):
    name = kind = "frame-decisions"
    headline = Headline("frame_agreement", "frame-decision agreement", "frame_agreement", "frame accuracy")
    params = {"threshold": (0.5, "fraction")}
    gates = {"min_frame_agreement": Gate("frame_agreement", "frame-decision agreement with fp32"),
             "min_active_f1": Gate("active_f1", "F1 of the active frames against fp32's")}
    # per mode: (agreement, active F1). A frame flips when its score is near the threshold; the F1
    # keeps a mostly quiet sequence from passing on its quiet frames alone.
    tolerances = {"fp32": {"min_frame_agreement": 0.99, "min_active_f1": 0.98},
                  "fp16": {"min_frame_agreement": 0.98, "min_active_f1": 0.95},
                  "dynamic": {"min_frame_agreement": 0.95, "min_active_f1": 0.90},
                  "int8": {"min_frame_agreement": 0.90, "min_active_f1": 0.85}}
    tolerance_reasons = {
        "fp32": "the same graph: only a frame whose score ties the threshold to the last bit may flip",
        "fp16": "fp16 moves scores by ~1e-3 and the carried state drifts as little: a frame at a segment's edge may flip, 2 in 100",
        "dynamic": "int8 weights move scores by a few hundredths: edges shift by a frame or so, 5 in 100",
        "int8": "int8 activations and a state re-quantized every step: edges shift by a frame or two; a usable detector keeps 90 %",
    }
    label_format = "integer frame decisions [N] (1 active, 0 not), one per step"

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        if not shape or any(d not in (1, None) for d in shape[1:]):
            raise ArtifactError(f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}; frame-decisions needs "
                                "one score per step ([N] or [N, 1]), or another task for other outputs")

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        return decision_figures(decisions(record, reference), decisions(record, converted), "fp32")

    def output_figures(self, record, outputs, metrics) -> None:
        outputs[record["output"]]["frame_agreement"] = metrics["frame_agreement"]

    def check_labels(self, record, labels, samples, where) -> None:
        if labels.ndim != 1 or labels.shape[0] != samples or labels.dtype.kind not in "iub" or (labels.size and not np.isin(labels, (0, 1)).all()):
            raise ArtifactError(f"{where}: labels are {labels.dtype} {list(labels.shape)} for {samples} steps; task {self.name!r} takes "
                                f"{self.label_format}")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        found = decisions(record, outputs)
        return {**decision_figures(np.asarray(labels[:len(found)]).astype(bool), found, "the labels"), "samples": len(outputs)}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        score = float(np.ravel(np.asarray(outputs[record["output"]]))[0])
        active = score > record["threshold"]
        return {"kind": self.kind, "active": active, "score": score, "label": "active" if active else "quiet",
                "confidence": score if active else 1.0 - score}


TASKS = (Frames(),)
